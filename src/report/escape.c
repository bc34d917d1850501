/* Escaping for the formats the report writes. */
#include "report/report.h"

void dpb_html_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            if (c < 0x20 && c != '\n' && c != '\t') fputc('?', f);
            else fputc(c, f);
        }
    }
}

void dpb_latex_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '\\': fputs("\\textbackslash{}", f); break;
        case '{': fputs("\\{", f); break;
        case '}': fputs("\\}", f); break;
        case '$': fputs("\\$", f); break;
        case '&': fputs("\\&", f); break;
        case '#': fputs("\\#", f); break;
        case '^': fputs("\\textasciicircum{}", f); break;
        case '_': fputs("\\_", f); break;
        case '%': fputs("\\%", f); break;
        case '~': fputs("\\textasciitilde{}", f); break;
        case '<': fputs("\\textless{}", f); break;
        case '>': fputs("\\textgreater{}", f); break;
        case '|': fputs("\\textbar{}", f); break;
        case '"': fputs("\\textquotedbl{}", f); break;
        case '/': fputs("/\\allowbreak{}", f); break;
        default:
            /* pdflatex without extra packages: control characters become spaces, and each
             * non-ASCII character one '?' (its continuation bytes dropped). */
            if (c < 0x20) fputc(' ', f);
            else if (c >= 0xC0) fputc('?', f);
            else if (c < 0x80) fputc(c, f);
        }
    }
}

void dpb_gnuplot_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\'') fputs("''", f);
        else if (c < 0x20) fputc(' ', f);
        else fputc(c, f);
    }
}
