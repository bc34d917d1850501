#include "safety/governance.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/file.h"
#include "core/json.h"

#define MAX_CARD_BYTES (4u << 20)

static const char *const k_names[DPB_GOV_N] = {"license", "usage_policy", "model_card", "safety_features", "architecture"};

const char *dpb_gov_field_name(int i) { return i >= 0 && i < DPB_GOV_N ? k_names[i] : "?"; }

void dpb_governance_free(dpb_governance *g)
{
    for (int i = 0; i < DPB_GOV_N; i++) {
        free(g->f[i].value);
        free(g->f[i].source);
    }
    memset(g, 0, sizeof *g);
}

static dpb_status set_field(dpb_governance *g, int i, const char *value, size_t vlen, const char *source)
{
    free(g->f[i].value);
    free(g->f[i].source);
    g->f[i].value = strndup(value, vlen);
    g->f[i].source = strdup(source);
    g->f[i].verified = false;
    if (!g->f[i].value || !g->f[i].source) return dpb_error_set(DPB_E_NOMEM, "governance: out of memory");
    return DPB_OK;
}

/* Reads the first existing file among names in dir (caller frees *text); *which gets the name. */
static int read_first(const char *dir, const char *const *names, size_t n, char **text, size_t *len, const char **which)
{
    for (size_t i = 0; i < n; i++) {
        char *p = NULL;
        if (dpb_path_join(dir, names[i], &p)) return 0;
        int ok = dpb_file_exists(p) && dpb_file_read(p, MAX_CARD_BYTES, text, len) == DPB_OK;
        free(p);
        if (ok) { *which = names[i]; return 1; }
        dpb_error_clear();
    }
    return 0;
}

/* value of "key:" in YAML front matter (a simple scalar on the same line) */
static int front_matter(const char *t, const char *key, const char **v, size_t *vl)
{
    if (strncmp(t, "---", 3) != 0) return 0;
    const char *end = strstr(t + 3, "\n---");
    if (!end) return 0;
    size_t kl = strlen(key);
    for (const char *line = strchr(t, '\n'); line && line < end; line = strchr(line + 1, '\n')) {
        const char *s = line + 1;
        if (strncmp(s, key, kl) == 0 && s[kl] == ':') {
            s += kl + 1;
            while (*s == ' ' || *s == '"' || *s == '\'') s++;
            const char *e = s;
            while (*e && *e != '\n' && *e != '\r') e++;
            while (e > s && (e[-1] == ' ' || e[-1] == '"' || e[-1] == '\'')) e--;
            if (e > s) { *v = s; *vl = (size_t)(e - s); return 1; }
        }
    }
    return 0;
}

static const char *ci_find(const char *h, const char *n)
{
    size_t k = strlen(n);
    for (; *h; h++)
        if (strncasecmp(h, n, k) == 0) return h;
    return NULL;
}

dpb_status dpb_governance_read(const char *dir, const char *meta_path, dpb_governance *g)
{
    memset(g, 0, sizeof *g);
    dpb_status st = DPB_OK;
    if (dir) {
        static const char *const cards[] = {"README.md", "hf_model_card.README.md"};
        char *t = NULL;
        size_t len = 0;
        const char *which = NULL;
        if (read_first(dir, cards, 2, &t, &len, &which)) {
            const char *v;
            size_t vl;
            char src[128];
            snprintf(src, sizeof src, "%s front matter", which);
            if (front_matter(t, "license", &v, &vl)) {
                char buf[512];
                const char *lv;
                size_t ll;
                if (front_matter(t, "license_link", &lv, &ll))
                    snprintf(buf, sizeof buf, "%.*s (%.*s)", (int)vl, v, (int)ll, lv);
                else snprintf(buf, sizeof buf, "%.*s", (int)vl, v);
                st = set_field(g, DPB_GOV_LICENSE, buf, strlen(buf), src);
            }
            /* model card: a link labelled "Model card", else the README itself */
            const char *mc = ci_find(t, "Model card</");
            const char *href = NULL;
            if (mc) {
                for (const char *q = mc; q > t && mc - q < 300; q--)
                    if (strncmp(q, "href=\"", 6) == 0) { href = q + 6; break; }
            }
            if (!st && href) {
                const char *e = strchr(href, '"');
                if (e) { snprintf(src, sizeof src, "%s link labelled 'Model card'", which); st = set_field(g, DPB_GOV_MODEL_CARD, href, (size_t)(e - href), src); }
            }
            if (!st && !g->f[DPB_GOV_MODEL_CARD].value) {
                char *p = NULL;
                if (!(st = dpb_path_join(dir, which, &p))) st = set_field(g, DPB_GOV_MODEL_CARD, p, strlen(p), "file in the model folder");
                free(p);
            }
            /* usage policy: a line mentioning it */
            const char *up = ci_find(t, "usage policy");
            if (!st && up) {
                const char *s = up, *e = up;
                while (s > t && s[-1] != '\n') s--;
                while (*e && *e != '\n') e++;
                snprintf(src, sizeof src, "%s (line mentioning 'usage policy')", which);
                st = set_field(g, DPB_GOV_USAGE_POLICY, s, (size_t)(e - s) > 300 ? 300 : (size_t)(e - s), src);
            }
            /* stated safety features: headings about safety, risks, limitations, responsible use */
            char feats[1024] = "";
            size_t fl = 0;
            for (const char *line = t; line && *line && !st; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
                if (*line != '#') continue;
                const char *e = line;
                while (*e && *e != '\n') e++;
                char h[200];
                snprintf(h, sizeof h, "%.*s", (int)(e - line), line);
                static const char *const kw[] = {"safety", "risk", "limitation", "responsible", "bias", "harm", "misuse", "policy"};
                for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++) {
                    if (ci_find(h, kw[k])) {
                        const char *hs = h;
                        while (*hs == '#' || *hs == ' ') hs++;
                        fl += (size_t)snprintf(feats + fl, sizeof feats - fl, "%s%s", fl ? "; " : "", hs);
                        if (fl >= sizeof feats) fl = sizeof feats - 1;
                        break;
                    }
                }
            }
            if (!st && fl) {
                snprintf(src, sizeof src, "%s headings (heuristic)", which);
                st = set_field(g, DPB_GOV_SAFETY_FEATURES, feats, fl, src);
            }
            free(t);
        }
        static const char *const lic[] = {"LICENSE", "LICENSE.txt", "LICENSE.md"};
        if (!st && read_first(dir, lic, 3, &t, &len, &which)) {
            const char *s = t;
            while (*s && isspace((unsigned char)*s)) s++;
            const char *e = s;
            while (*e && *e != '\n') e++;
            while (e > s && isspace((unsigned char)e[-1])) e--;
            char buf[300];
            snprintf(buf, sizeof buf, "%.*s", (int)(e - s > 200 ? 200 : e - s), s);
            char src[128];
            snprintf(src, sizeof src, "%s (first line)", which);
            if (!g->f[DPB_GOV_LICENSE].value) st = set_field(g, DPB_GOV_LICENSE, buf, strlen(buf), src);
            else { /* keep the card's identifier and note the file */
                char both[900];
                snprintf(both, sizeof both, "%s; %s: %s", g->f[DPB_GOV_LICENSE].value, which, buf);
                char s2[300];
                snprintf(s2, sizeof s2, "%s + %s", g->f[DPB_GOV_LICENSE].source, src);
                st = set_field(g, DPB_GOV_LICENSE, both, strlen(both), s2);
            }
            free(t);
        }
        static const char *const pol[] = {"USAGE_POLICY", "USAGE_POLICY.md", "USE_POLICY.md", "Responsible-Use-Guide.md"};
        if (!st && read_first(dir, pol, 4, &t, &len, &which)) {
            char *p = NULL;
            if (!(st = dpb_path_join(dir, which, &p))) st = set_field(g, DPB_GOV_USAGE_POLICY, p, strlen(p), "file in the model folder");
            free(p);
            free(t);
        }
        char *cp = NULL;
        if (!st && !(st = dpb_path_join(dir, "config.json", &cp)) && dpb_file_exists(cp)) {
            cJSON *c = NULL;
            if (dpb_json_load(cp, MAX_CARD_BYTES, &c) == DPB_OK) {
                const cJSON *a = cJSON_GetObjectItemCaseSensitive(c, "architectures");
                const cJSON *mt = cJSON_GetObjectItemCaseSensitive(c, "model_type");
                const cJSON *a0 = cJSON_IsArray(a) ? cJSON_GetArrayItem(a, 0) : NULL;
                char buf[200];
                snprintf(buf, sizeof buf, "%s%s%s", cJSON_IsString(a0) ? a0->valuestring : "",
                         cJSON_IsString(a0) && cJSON_IsString(mt) ? " / " : "", cJSON_IsString(mt) ? mt->valuestring : "");
                if (buf[0]) st = set_field(g, DPB_GOV_ARCH, buf, strlen(buf), "config.json");
            } else dpb_error_clear();
            cJSON_Delete(c);
        }
        free(cp);
        if (st) { dpb_governance_free(g); return st; }
    }
    if (meta_path) {
        cJSON *m = NULL;
        if (!dpb_file_exists(meta_path)) {
            dpb_governance_free(g);
            return dpb_error_set(DPB_E_IO, "--metadata %s: file not found", meta_path);
        }
        if ((st = dpb_json_load(meta_path, MAX_CARD_BYTES, &m))) { dpb_governance_free(g); return st; }
        if (!cJSON_IsObject(m)) st = dpb_error_set(DPB_E_FORMAT, "%s: expected a JSON object", meta_path);
        for (int i = 0; i < DPB_GOV_N && !st; i++) {
            const char *v;
            bool present;
            if ((st = dpb_json_get_string(m, k_names[i], meta_path, DPB_JSON_OPTIONAL, NULL, &v, &present))) break;
            if (present) st = set_field(g, i, v, strlen(v), "metadata JSON");
        }
        const cJSON *ver = cJSON_GetObjectItemCaseSensitive(m, "verified");
        if (!st && ver) {
            if (!cJSON_IsArray(ver)) st = dpb_error_set(DPB_E_FORMAT, "%s: verified: expected an array of field names", meta_path);
            const cJSON *x;
            cJSON_ArrayForEach(x, ver) {
                if (st) break;
                int k = -1;
                for (int i = 0; i < DPB_GOV_N; i++)
                    if (cJSON_IsString(x) && !strcmp(x->valuestring, k_names[i])) k = i;
                if (k < 0) st = dpb_error_set(DPB_E_FORMAT, "%s: verified: '%.40s' is not a field (license, usage_policy, model_card, safety_features, architecture)",
                                              meta_path, cJSON_IsString(x) ? x->valuestring : "?");
                else if (g->f[k].value) g->f[k].verified = true;
            }
        }
        cJSON_Delete(m);
        if (st) { dpb_governance_free(g); return st; }
    }
    return DPB_OK;
}

cJSON *dpb_governance_json(const dpb_governance *g)
{
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < DPB_GOV_N; i++) {
        cJSON *f = cJSON_AddObjectToObject(o, k_names[i]);
        if (g->f[i].value) cJSON_AddStringToObject(f, "value", g->f[i].value);
        else cJSON_AddNullToObject(f, "value");
        cJSON_AddStringToObject(f, "source", g->f[i].source ? g->f[i].source : "not found");
        cJSON_AddBoolToObject(f, "verified", g->f[i].verified);
    }
    return o;
}
