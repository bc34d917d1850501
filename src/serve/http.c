#include "serve/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include "core/timeutil.h"

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT_T;
#else
typedef enum MHD_Result MHD_RESULT_T;
#endif

/* One TCP connection, for the read deadline (lim.read_timeout_s). */
typedef struct conn_track {
    MHD_socket fd;
    uint64_t t_start; /* ns: when its current request began to be read (connection open, previous response done) */
    bool reading, cut;
    struct conn_track *prev, *next;
} conn_track;

struct dpb_http_server {
    struct MHD_Daemon *d;
    /* the read deadline: connections being read, and a thread that cuts the late ones */
    pthread_mutex_t tmu;
    pthread_cond_t tcv;
    conn_track *tracks;
    pthread_t reaper;
    bool reaper_ok, reaper_stop;
    dpb_http_handler handler;
    void *ctx;
    dpb_http_limits lim;
    uint16_t port;
    pthread_mutex_t mu; /* guards the stream list */
    dpb_http_stream *streams;
    int refs; /* the owner + one per live stream */
    bool stopping;
};

struct dpb_http_stream {
    pthread_mutex_t mu;
    int refs;               /* caller + libmicrohttpd */
    struct MHD_Connection *mc;
    dpb_http_server *srv;
    char *buf;
    size_t len, off, cap;
    bool suspended, ended, gone;
    /* a deferred whole response (dpb_http_defer): buf holds its body once ready */
    bool deferred, ready;
    unsigned status;
    char ctype[96];
    dpb_http_stream *prev, *next; /* in srv->streams */
};

/* Per-connection state for one request. */
struct dpb_http_conn {
    dpb_http_server *srv;
    struct MHD_Connection *mc;
    char *body;
    size_t len, cap;
    bool too_big, answered;
    MHD_RESULT_T queued;
    dpb_http_stream *def; /* a deferred answer (the connection holds one reference) */
};

void dpb_http_limits_default(dpb_http_limits *l)
{
    l->max_body_bytes = 8u << 20;
    l->max_header_bytes = 32u << 10;
    l->max_connections = 16384;
    l->idle_timeout_s = 60;
    l->read_timeout_s = 30;
    l->threads = 1;
}

static void server_free(dpb_http_server *srv)
{
    while (srv->tracks) { /* none are left once the daemon has stopped */
        conn_track *t = srv->tracks;
        srv->tracks = t->next;
        free(t);
    }
    pthread_mutex_destroy(&srv->mu);
    pthread_mutex_destroy(&srv->tmu);
    pthread_cond_destroy(&srv->tcv);
    free(srv);
}

static void server_release(dpb_http_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    int left = --srv->refs;
    pthread_mutex_unlock(&srv->mu);
    if (left) return;
    server_free(srv);
}

static void stream_release(dpb_http_stream *s)
{
    pthread_mutex_lock(&s->mu);
    int left = --s->refs;
    pthread_mutex_unlock(&s->mu);
    if (left) return;
    dpb_http_server *srv = s->srv;
    pthread_mutex_lock(&srv->mu);
    if (s->prev) s->prev->next = s->next;
    else srv->streams = s->next;
    if (s->next) s->next->prev = s->prev;
    pthread_mutex_unlock(&srv->mu);
    pthread_mutex_destroy(&s->mu);
    free(s->buf);
    free(s);
    server_release(srv);
}

/* libmicrohttpd asks for the next bytes of a stream. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *out, size_t max)
{
    (void)pos;
    dpb_http_stream *s = cls;
    pthread_mutex_lock(&s->mu);
    if (s->len > s->off) {
        size_t n = s->len - s->off;
        if (n > max) n = max;
        memcpy(out, s->buf + s->off, n);
        s->off += n;
        if (s->off == s->len) s->off = s->len = 0;
        pthread_mutex_unlock(&s->mu);
        return (ssize_t)n;
    }
    if (s->ended || s->gone) {
        pthread_mutex_unlock(&s->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    /* Nothing to send yet: park the connection until a write resumes it. */
    s->suspended = true;
    MHD_suspend_connection(s->mc);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* The response is destroyed: the connection is done with the stream. */
static void stream_reader_free(void *cls)
{
    dpb_http_stream *s = cls;
    pthread_mutex_lock(&s->mu);
    s->gone = true;
    s->mc = NULL;
    pthread_mutex_unlock(&s->mu);
    stream_release(s);
}

static void wake_locked(dpb_http_stream *s)
{
    if (s->suspended && s->mc) {
        s->suspended = false;
        MHD_resume_connection(s->mc);
    }
}

dpb_status dpb_http_stream_write(dpb_http_stream *s, const void *data, size_t len)
{
    if (s->deferred) return dpb_error_set(DPB_E_INTERNAL, "http: a deferred response takes no writes");
    pthread_mutex_lock(&s->mu);
    if (s->gone || s->ended) {
        pthread_mutex_unlock(&s->mu);
        return dpb_error_set(DPB_E_IO, "stream: the client closed the connection");
    }
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 1024;
        while (cap < s->len + len) cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (!nb) {
            pthread_mutex_unlock(&s->mu);
            return dpb_error_set(DPB_E_NOMEM, "stream: out of memory queueing %zu bytes", len);
        }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    wake_locked(s);
    pthread_mutex_unlock(&s->mu);
    return DPB_OK;
}

bool dpb_http_stream_gone(dpb_http_stream *s)
{
    pthread_mutex_lock(&s->mu);
    bool g = s->gone;
    /* Look at the socket for the peer's close (FIN or reset) now, rather
     * than learn it from the next write that fails on the server thread (a
     * parked connection is not watched by libmicrohttpd at all).  The socket
     * stays open while s->mc is set: the connection frees the response
     * (stream_reader_free, which takes s->mu) or its deferred answer
     * (on_completed, likewise) before it closes the socket. */
    if (!g && s->mc) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(s->mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) {
            struct pollfd p = {ci->connect_fd, POLLRDHUP, 0};
            if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) g = s->gone = true;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return g;
}

void dpb_http_stream_end(dpb_http_stream *s)
{
    if (s->deferred) { /* ended without an answer */
        static const char b[] = "{\"error\":{\"message\":\"the request ended without a response\","
                                "\"type\":\"InternalServerError\",\"param\":null,\"code\":500}}";
        dpb_http_deferred_reply(s, 500, "application/json", b, sizeof b - 1);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->ended = true;
    wake_locked(s);
    pthread_mutex_unlock(&s->mu);
    stream_release(s);
}

/* Links s into the server's list (it keeps the server alive); a server that
 * is stopping marks it gone at once. */
static void stream_register(dpb_http_server *srv, dpb_http_stream *s)
{
    pthread_mutex_lock(&srv->mu);
    s->next = srv->streams;
    if (srv->streams) srv->streams->prev = s;
    srv->streams = s;
    srv->refs++;
    if (srv->stopping) s->gone = true;
    pthread_mutex_unlock(&srv->mu);
}

dpb_status dpb_http_stream_start(dpb_http_conn *c, unsigned status, const char *content_type,
                                 dpb_http_stream **out)
{
    *out = NULL;
    if (c->answered || c->def) return dpb_error_set(DPB_E_INTERNAL, "http: request answered twice");
    dpb_http_stream *s = calloc(1, sizeof *s);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "http: out of memory for a stream");
    pthread_mutex_init(&s->mu, NULL);
    s->refs = 2;
    s->mc = c->mc;
    s->srv = c->srv;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, s,
                                                                stream_reader_free);
    if (!r) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return dpb_error_set(DPB_E_NOMEM, "http: cannot create a streaming response");
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    stream_register(c->srv, s); /* stopping: gone, so the reader ends it at once, it never suspends */
    c->queued = MHD_queue_response(c->mc, status, r);
    MHD_destroy_response(r); /* the connection keeps its reference; stream_reader_free runs when it is done */
    c->answered = true;
    if (c->queued != MHD_YES) {
        /* The connection is being closed; stream_reader_free has released (or will release) MHD's ref. */
        pthread_mutex_lock(&s->mu);
        s->gone = true;
        pthread_mutex_unlock(&s->mu);
    }
    *out = s;
    return DPB_OK;
}

dpb_status dpb_http_reply_hdrs(dpb_http_conn *c, unsigned status, const char *content_type,
                               const char *const *hdrs, const char *body, size_t len)
{
    if (c->answered) return dpb_error_set(DPB_E_INTERNAL, "http: request answered twice");
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r) return dpb_error_set(DPB_E_NOMEM, "http: cannot create a response of %zu bytes", len);
    if (content_type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (size_t i = 0; hdrs && hdrs[i]; i += 2) MHD_add_response_header(r, hdrs[i], hdrs[i + 1]);
    c->queued = MHD_queue_response(c->mc, status, r);
    MHD_destroy_response(r);
    c->answered = true;
    return DPB_OK;
}

dpb_status dpb_http_reply(dpb_http_conn *c, unsigned status, const char *content_type, const char *body,
                          size_t len)
{
    return dpb_http_reply_hdrs(c, status, content_type, NULL, body, len);
}

dpb_status dpb_http_defer(dpb_http_conn *c, dpb_http_stream **out)
{
    *out = NULL;
    if (c->answered || c->def) return dpb_error_set(DPB_E_INTERNAL, "http: request answered twice");
    dpb_http_stream *s = calloc(1, sizeof *s);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "http: out of memory for a deferred response");
    pthread_mutex_init(&s->mu, NULL);
    s->refs = 2; /* the caller + the connection (released in on_completed) */
    s->mc = c->mc;
    s->srv = c->srv;
    s->deferred = true;
    stream_register(c->srv, s);
    c->def = s;
    *out = s;
    return DPB_OK;
}

void dpb_http_deferred_reply(dpb_http_stream *s, unsigned status, const char *content_type, const char *body,
                             size_t len)
{
    pthread_mutex_lock(&s->mu);
    if (s->deferred && !s->ready && !s->gone) {
        s->len = 0;
        char *nb = len ? malloc(len) : NULL;
        if (len && !nb) { /* no memory for the body: a bodiless 500 */
            status = 500;
            len = 0;
            content_type = NULL;
        }
        if (nb) memcpy(nb, body, len);
        free(s->buf);
        s->buf = nb;
        s->len = len;
        s->status = status;
        snprintf(s->ctype, sizeof s->ctype, "%s", content_type ? content_type : "");
        s->ready = true;
    }
    wake_locked(s); /* also when gone: the parked connection then closes */
    s->ended = true;
    pthread_mutex_unlock(&s->mu);
    stream_release(s);
}

static void reply_error(dpb_http_conn *c, unsigned status, const char *type, const char *msg)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":%u}}", msg, type,
                     status);
    dpb_http_reply(c, status, "application/json", buf, (size_t)n);
}

/* A deferred answer: queue it when ready, a 503 when the server is stopping,
 * else park the connection until dpb_http_deferred_reply resumes it (and
 * libmicrohttpd calls on_access again). */
static MHD_RESULT_T deferred_poll(dpb_http_conn *c)
{
    dpb_http_stream *s = c->def;
    pthread_mutex_lock(&s->mu);
    if (s->ready) {
        struct MHD_Response *r = MHD_create_response_from_buffer(s->len, s->buf, MHD_RESPMEM_MUST_COPY);
        if (r && s->ctype[0]) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, s->ctype);
        c->queued = r ? MHD_queue_response(c->mc, s->status, r) : MHD_NO;
        if (r) MHD_destroy_response(r);
        c->answered = true;
        pthread_mutex_unlock(&s->mu);
        return c->queued;
    }
    if (s->gone) {
        pthread_mutex_unlock(&s->mu);
        reply_error(c, 503, "ServiceUnavailableError", "the server is shutting down");
        return c->queued;
    }
    s->suspended = true;
    MHD_suspend_connection(c->mc);
    pthread_mutex_unlock(&s->mu);
    return MHD_YES;
}

/* ---- the read deadline ----
 * libmicrohttpd's connection timeout is an idle timeout: a client that sends
 * a header byte now and then keeps its connection forever.  Every connection
 * is tracked from the moment it opens; once a request is wholly in (headers
 * and body) it is no longer timed, and its clock restarts when the response
 * is done (keep-alive).  A thread shuts down the socket of a connection whose
 * request is not in after read_timeout_s; libmicrohttpd then closes it as any
 * connection whose peer has gone.  The socket is valid while its track is
 * listed: the track is removed (MHD_CONNECTION_NOTIFY_CLOSED) before the
 * socket is closed. */

static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    dpb_http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_track *t = calloc(1, sizeof *t);
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!t || !ci) { /* untracked: only the idle timeout applies */
            free(t);
            *socket_ctx = NULL;
            return;
        }
        t->fd = ci->connect_fd;
        t->t_start = dpb_now_ns();
        t->reading = true;
        pthread_mutex_lock(&srv->tmu);
        t->next = srv->tracks;
        if (srv->tracks) srv->tracks->prev = t;
        srv->tracks = t;
        pthread_mutex_unlock(&srv->tmu);
        *socket_ctx = t;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_ctx) {
        conn_track *t = *socket_ctx;
        pthread_mutex_lock(&srv->tmu);
        if (t->prev) t->prev->next = t->next;
        else srv->tracks = t->next;
        if (t->next) t->next->prev = t->prev;
        pthread_mutex_unlock(&srv->tmu);
        free(t);
        *socket_ctx = NULL;
    }
}

static void track_set(dpb_http_server *srv, struct MHD_Connection *mc, bool reading)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_track *t = ci ? ci->socket_context : NULL;
    if (!t) return;
    pthread_mutex_lock(&srv->tmu);
    if (reading && !t->reading) t->t_start = dpb_now_ns();
    t->reading = reading;
    pthread_mutex_unlock(&srv->tmu);
}

static void *reaper_main(void *arg)
{
    dpb_http_server *srv = arg;
    uint64_t limit = (uint64_t)srv->lim.read_timeout_s * 1000000000ull;
    pthread_mutex_lock(&srv->tmu);
    while (!srv->reaper_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 250000000L; /* four looks a second: a late request is cut within 0.25 s of its deadline */
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->tcv, &srv->tmu, &ts);
        uint64_t now = dpb_now_ns();
        for (conn_track *t = srv->tracks; t; t = t->next)
            if (t->reading && !t->cut && now - t->t_start > limit) {
                t->cut = true;
                shutdown(t->fd, SHUT_RDWR);
            }
    }
    pthread_mutex_unlock(&srv->tmu);
    return NULL;
}

static MHD_RESULT_T on_access(void *cls, struct MHD_Connection *mc, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_size, void **req_cls)
{
    (void)version;
    dpb_http_server *srv = cls;
    dpb_http_conn *c = *req_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c) return MHD_NO;
        c->srv = srv;
        c->mc = mc;
        *req_cls = c;
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->too_big) return MHD_YES;
        if (c->len + n > srv->lim.max_body_bytes) {
            c->too_big = true;
            free(c->body);
            c->body = NULL;
            c->len = c->cap = 0;
            return MHD_YES;
        }
        if (c->len + n + 1 > c->cap) {
            size_t cap = c->cap ? c->cap : 4096;
            while (cap < c->len + n + 1) cap *= 2;
            char *nb = realloc(c->body, cap);
            if (!nb) return MHD_NO;
            c->body = nb;
            c->cap = cap;
        }
        memcpy(c->body + c->len, upload_data, n);
        c->len += n;
        return MHD_YES;
    }
    track_set(srv, mc, false); /* the request is wholly in */
    if (c->answered) return c->queued;
    if (c->def) return deferred_poll(c); /* resumed */
    if (c->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body is larger than the %zu-byte limit", srv->lim.max_body_bytes);
        reply_error(c, 413, "BadRequestError", msg);
        return c->queued;
    }
    char path[2048];
    size_t pl = strcspn(url, "?");
    if (pl >= sizeof path) {
        reply_error(c, 414, "BadRequestError", "URL too long");
        return c->queued;
    }
    memcpy(path, url, pl);
    path[pl] = 0;
    dpb_http_request rq = {method, path, c->body ? c->body : "", c->len, c};
    if (c->body) c->body[c->len] = 0;
    srv->handler(srv->ctx, &rq);
    if (c->def && !c->answered) return deferred_poll(c);
    if (!c->answered) reply_error(c, 500, "InternalServerError", "the handler gave no response");
    return c->queued;
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **req_cls, enum MHD_RequestTerminationCode tc)
{
    (void)tc;
    track_set(cls, mc, true); /* keep-alive: the next request's clock starts */
    dpb_http_conn *c = *req_cls;
    if (!c) return;
    if (c->def) { /* the connection's reference to a deferred answer */
        pthread_mutex_lock(&c->def->mu);
        c->def->gone = true;
        c->def->mc = NULL;
        pthread_mutex_unlock(&c->def->mu);
        stream_release(c->def);
    }
    free(c->body);
    free(c);
    *req_cls = NULL;
}

dpb_status dpb_http_server_start(const char *host, uint16_t port, const dpb_http_limits *lim,
                                 dpb_http_handler handler, void *ctx, dpb_http_server **out)
{
    *out = NULL;
    dpb_http_server *s = calloc(1, sizeof *s);
    if (!s) return dpb_error_set(DPB_E_NOMEM, "http: out of memory");
    if (lim) s->lim = *lim;
    else dpb_http_limits_default(&s->lim);
    s->handler = handler;
    s->ctx = ctx;
    s->refs = 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->tmu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->tcv, &ca);
    pthread_condattr_destroy(&ca);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        server_free(s);
        return dpb_error_set(DPB_E_ARG, "--host: '%s' is not a numeric IPv4 address", host);
    }
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
    unsigned threads = s->lim.threads > 1 ? s->lim.threads : 0;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_SOCK_ADDR, 0, &addr},
        {MHD_OPTION_CONNECTION_LIMIT, s->lim.max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, s->lim.idle_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)s->lim.max_header_bytes, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, s},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096, NULL},
        {threads ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    s->d = MHD_start_daemon(flags, port, NULL, NULL, on_access, s, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!s->d) {
        int e = errno;
        server_free(s);
        return dpb_error_set(DPB_E_IO, "http: cannot listen on %s:%u: %s", host, (unsigned)port,
                             e ? strerror(e) : "libmicrohttpd refused to start");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : port;
    if (s->lim.read_timeout_s && pthread_create(&s->reaper, NULL, reaper_main, s) != 0) {
        MHD_stop_daemon(s->d);
        server_free(s);
        return dpb_error_set(DPB_E_INTERNAL, "http: cannot start the read-deadline thread");
    }
    s->reaper_ok = s->lim.read_timeout_s != 0;
    *out = s;
    return DPB_OK;
}

uint16_t dpb_http_server_port(const dpb_http_server *s) { return s->port; }

void dpb_http_server_stop(dpb_http_server *s)
{
    if (!s) return;
    /* stop accepting; the listen socket is ours to close after quiescing */
    MHD_socket ls = MHD_quiesce_daemon(s->d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    if (s->reaper_ok) {
        pthread_mutex_lock(&s->tmu);
        s->reaper_stop = true;
        pthread_cond_signal(&s->tcv);
        pthread_mutex_unlock(&s->tmu);
        pthread_join(s->reaper, NULL);
    }
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    for (dpb_http_stream *st = s->streams; st; st = st->next) {
        pthread_mutex_lock(&st->mu);
        st->gone = true;
        wake_locked(st);
        pthread_mutex_unlock(&st->mu);
    }
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->d);
    /* Streams an engine still holds keep the server struct alive until they end. */
    server_release(s);
}
