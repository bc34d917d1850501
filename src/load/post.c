#include "load/post.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>
#include "core/signal.h"
#include "core/timeutil.h"

void dpb_post_opts_default(dpb_post_opts *o)
{
    memset(o, 0, sizeof *o);
    o->max_inflight = 8;
    o->attempts = 3;
    o->timeout_s = 600;
    o->connect_timeout_s = 10;
    o->backoff_s = 0.5;
    o->max_reply = 64u << 20;
}

typedef struct slot {
    dpb_post *r;
    CURL *easy;
    char *buf;
    size_t len, cap, max;
    int too_big, nomem;
} slot;

static size_t on_write(char *data, size_t sz, size_t nm, void *u)
{
    slot *s = u;
    size_t n = sz * nm;
    if (n > s->max || s->len + n + 1 > s->max) { s->too_big = 1; return 0; }
    if (s->len + n + 1 > s->cap) {
        size_t nc = s->cap ? s->cap : 4096;
        while (nc < s->len + n + 1) nc *= 2;
        char *p = realloc(s->buf, nc);
        if (!p) { s->nomem = 1; return 0; }
        s->buf = p;
        s->cap = nc;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    s->buf[s->len] = 0;
    return n;
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static bool retryable(const dpb_post *r) { return r->status == 0 || r->status == 429 || r->status >= 500; }

dpb_status dpb_post_run(dpb_post *reqs, size_t n, const dpb_post_opts *o)
{
    if (o->max_inflight < 1) return dpb_error_set(DPB_E_ARG, "post: max_inflight must be >= 1");
    pthread_once(&g_once, init_once);
    for (size_t i = 0; i < n; i++) {
        reqs[i].status = 0;
        reqs[i].reply = NULL;
        reqs[i].reply_len = 0;
        reqs[i].error[0] = 0;
        reqs[i].attempts = 0;
    }
    size_t ns = (size_t)o->max_inflight < n ? (size_t)o->max_inflight : n;
    slot *sl = calloc(ns ? ns : 1, sizeof *sl);
    uint64_t *not_before = calloc(n ? n : 1, sizeof *not_before);
    size_t *queue = calloc(n ? n : 1, sizeof *queue); /* ring of request indexes waiting to (re)start */
    CURLM *m = curl_multi_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char auth[512];
    if (h && o->api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->api_key);
        struct curl_slist *h2 = curl_slist_append(h, auth);
        if (h2) h = h2;
    }
    dpb_status st = DPB_OK;
    if (!sl || !not_before || !queue || !m || !h) { st = dpb_error_set(DPB_E_NOMEM, "post: out of memory"); goto out; }
    size_t qh = 0, qn = n, done = 0, active = 0;
    for (size_t i = 0; i < n; i++) queue[i] = i;
    int attempts = o->attempts > 0 ? o->attempts : 1;
    while (done < n) {
        if (dpb_interrupted()) { st = dpb_error_set(DPB_E_INTERRUPTED, "post: interrupted"); break; }
        uint64_t now = dpb_now_ns(), wait_ns = 100000000ull;
        /* start what may start */
        for (size_t k = 0; k < ns && qn > 0; k++) {
            if (sl[k].r) continue;
            size_t idx = queue[qh];
            if (not_before[idx] > now) { if (not_before[idx] - now < wait_ns) wait_ns = not_before[idx] - now; break; }
            qh = (qh + 1) % n;
            qn--;
            slot *s = &sl[k];
            s->r = &reqs[idx];
            s->len = 0;
            s->too_big = s->nomem = 0;
            s->max = o->max_reply ? o->max_reply : (64u << 20);
            if (!s->easy && !(s->easy = curl_easy_init())) { st = dpb_error_set(DPB_E_INTERNAL, "post: curl_easy_init failed"); goto out; }
            curl_easy_reset(s->easy);
            curl_easy_setopt(s->easy, CURLOPT_URL, s->r->url);
            curl_easy_setopt(s->easy, CURLOPT_POST, 1L);
            curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->r->body);
            curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, h);
            curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_write);
            curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
            curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
            curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, (long)((o->timeout_s > 0 ? o->timeout_s : 600) * 1000));
            curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS,
                             (long)((o->connect_timeout_s > 0 ? o->connect_timeout_s : 10) * 1000));
            if (curl_multi_add_handle(m, s->easy) != CURLM_OK) { st = dpb_error_set(DPB_E_INTERNAL, "post: curl_multi_add_handle failed"); goto out; }
            s->r->attempts++;
            active++;
        }
        int running = 0;
        if (curl_multi_perform(m, &running) != CURLM_OK) { st = dpb_error_set(DPB_E_INTERNAL, "post: curl_multi_perform failed"); break; }
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            slot *s = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            CURLcode cc = msg->data.result;
            curl_multi_remove_handle(m, msg->easy_handle);
            active--;
            dpb_post *r = s->r;
            s->r = NULL;
            free(r->reply);
            r->reply = NULL;
            r->reply_len = 0;
            r->status = 0;
            r->error[0] = 0;
            if (s->too_big) snprintf(r->error, sizeof r->error, "reply larger than %zu bytes", s->max);
            else if (s->nomem) snprintf(r->error, sizeof r->error, "out of memory for the reply");
            else if (cc != CURLE_OK) snprintf(r->error, sizeof r->error, "%s", curl_easy_strerror(cc));
            else {
                curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &r->status);
                r->reply = s->buf;
                r->reply_len = s->len;
                s->buf = NULL;
                s->len = s->cap = 0;
            }
            bool ok = r->status >= 200 && r->status <= 299;
            if (!ok && retryable(r) && r->attempts < attempts && !s->too_big) {
                size_t idx = (size_t)(r - reqs);
                double d = (o->backoff_s > 0 ? o->backoff_s : 0) * (double)(1u << (r->attempts - 1));
                not_before[idx] = dpb_now_ns() + (uint64_t)(d * 1e9);
                queue[(qh + qn) % n] = idx;
                qn++;
            } else done++;
        }
        if (done >= n) break;
        if (active > 0) {
            int nfds;
            long ms = (long)(wait_ns / 1000000ull);
            curl_multi_poll(m, NULL, 0, (int)(ms < 1 ? 1 : ms), &nfds);
        } else if (qn > 0) {
            struct timespec ts = {(time_t)(wait_ns / 1000000000ull), (long)(wait_ns % 1000000000ull)};
            nanosleep(&ts, NULL);
        }
    }
out:
    if (st)
        for (size_t i = 0; i < n; i++)
            if (!reqs[i].status && !reqs[i].error[0]) snprintf(reqs[i].error, sizeof reqs[i].error, "interrupted");
    for (size_t k = 0; sl && k < ns; k++) {
        if (sl[k].easy) {
            if (sl[k].r) curl_multi_remove_handle(m, sl[k].easy);
            curl_easy_cleanup(sl[k].easy);
        }
        free(sl[k].buf);
    }
    if (m) curl_multi_cleanup(m);
    curl_slist_free_all(h);
    free(sl);
    free(not_before);
    free(queue);
    return st;
}

void dpb_post_clear(dpb_post *reqs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(reqs[i].reply);
        reqs[i].reply = NULL;
        reqs[i].reply_len = 0;
    }
}

const char *dpb_post_describe(const dpb_post *r, char *buf, size_t cap)
{
    if (r->status == 0) {
        snprintf(buf, cap, "%s (after %d attempt%s)", r->error[0] ? r->error : "no reply", r->attempts,
                 r->attempts == 1 ? "" : "s");
        return buf;
    }
    const char *msg = NULL;
    cJSON *root = r->reply ? cJSON_ParseWithLength(r->reply, r->reply_len) : NULL;
    const cJSON *e = root ? cJSON_GetObjectItemCaseSensitive(root, "error") : NULL;
    const cJSON *mm = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "message") : e;
    if (cJSON_IsString(mm)) msg = mm->valuestring;
    if (msg) snprintf(buf, cap, "HTTP %ld: %.300s", r->status, msg);
    else snprintf(buf, cap, "HTTP %ld: %.200s", r->status, r->reply ? r->reply : "(empty body)");
    for (char *p = buf; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
    cJSON_Delete(root);
    return buf;
}
