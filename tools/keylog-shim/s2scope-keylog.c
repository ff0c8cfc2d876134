/*
 * s2scope-keylog: an LD_PRELOAD library that makes an OpenSSL-based server write the NSS key
 * log (SSLKEYLOGFILE format) of every TLS session it makes, so that S2Scope (or Wireshark) can
 * decrypt the server's s2s traffic. Prosody (LuaSec) and ejabberd (fast_tls) on Debian's
 * OpenSSL 3.0 have no key-log setting of their own.
 *
 *   LD_PRELOAD=/usr/local/lib/s2scope/libs2scope-keylog.so SSLKEYLOGFILE=/var/lib/s2scope/keys.log prosody
 *
 * How: the library defines SSL_CTX_new, SSL_CTX_new_ex, SSL_new and SSL_set_SSL_CTX. The
 * dynamic linker binds the server's calls to these (LD_PRELOAD objects come first in the global
 * scope, also for modules loaded later with dlopen and RTLD_LOCAL, such as LuaSec's ssl.so and
 * fast_tls.so); each calls the real function and installs a key-log callback on the context
 * (SSL_CTX_set_keylog_callback, OpenSSL 1.1.1 and later) unless the program installed its own.
 * OpenSSL hands the callback one finished NSS key log line per secret; it is appended to the
 * file in a single write(2) on a descriptor opened with O_APPEND, so lines of several processes
 * or threads never interleave.
 *
 * The file is created with mode 0600. ANYONE WHO CAN READ IT CAN DECRYPT EVERY SESSION IT
 * COVERS, including the stanzas (messages, presence, credentials inside them) of every user.
 *
 * The library does not link libssl: the real functions are looked up at run time (the next
 * definition in the global scope, else the libssl already loaded by a module), so a preloaded
 * process that never uses TLS (a shell, epmd) never loads libssl. Without SSLKEYLOGFILE, or when
 * the file cannot be opened, it changes nothing (one line on standard error says why).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Opaque OpenSSL types: the library needs no OpenSSL headers. */
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_method_st SSL_METHOD;
typedef struct ossl_lib_ctx_st OSSL_LIB_CTX;
typedef void (*keylog_callback)(const SSL *ssl, const char *line);

#define EXPORT __attribute__((visibility("default")))

static const char *const libssl_names[] = { "libssl.so.3", "libssl.so.1.1", "libssl.so", NULL };

/* Returns the real definition of `name`: the next one in the global scope, else the one in a
 * libssl a module loaded locally (RTLD_NOLOAD: never loads a library itself). */
static void *real_symbol(const char *name) {
    void *sym = dlsym(RTLD_NEXT, name);
    if (sym) return sym;
    for (int i = 0; libssl_names[i]; i++) {
        void *h = dlopen(libssl_names[i], RTLD_LAZY | RTLD_NOLOAD);
        if (!h) continue;
        sym = dlsym(h, name);
        dlclose(h);  /* drops only the reference RTLD_NOLOAD added */
        if (sym) return sym;
    }
    return NULL;
}

static void note(const char *what, const char *path, int err) {
    char buf[512];
    int n = snprintf(buf, sizeof buf, "s2scope-keylog: %s%s%s%s%s\n", what, path ? " " : "", path ? path : "",
                     err ? ": " : "", err ? strerror(err) : "");
    if (n > 0) {
        ssize_t w = write(STDERR_FILENO, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
        (void)w;
    }
}

static int keylog_fd = -1;

static void open_keylog(void) {
    const char *path = getenv("SSLKEYLOGFILE");
    if (!path || !*path) return;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        note("cannot open the key log", path, errno);
        return;
    }
    struct stat st;
    if (fstat(fd, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            note("the key log is not a regular file, not writing to", path, 0);
            close(fd);
            return;
        }
        if (st.st_mode & (S_IRWXG | S_IRWXO))
            note("WARNING: the key log is readable or writable by group or others; it decrypts every session:", path, 0);
    }
    keylog_fd = fd;
}

static void write_line(const SSL *ssl, const char *line) {
    (void)ssl;
    if (keylog_fd < 0 || !line) return;
    size_t len = strlen(line);
    char stackbuf[1024];
    char *buf = len + 1 <= sizeof stackbuf ? stackbuf : malloc(len + 1);
    if (!buf) return;
    memcpy(buf, line, len);
    buf[len] = '\n';
    /* One write per line: with O_APPEND the kernel appends it whole (regular files). */
    size_t done = 0;
    while (done < len + 1) {
        ssize_t w = write(keylog_fd, buf + done, len + 1 - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    if (buf != stackbuf) free(buf);
}

/* The real functions, resolved once (any of the interposed functions runs first: libssl is
 * loaded by then). */
static struct {
    SSL_CTX *(*ctx_new)(const SSL_METHOD *);
    SSL_CTX *(*ctx_new_ex)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *);
    SSL *(*ssl_new)(SSL_CTX *);
    SSL_CTX *(*set_ssl_ctx)(SSL *, SSL_CTX *);
    keylog_callback (*get_cb)(const SSL_CTX *);
    void (*set_cb)(SSL_CTX *, keylog_callback);
} real;
static pthread_once_t resolve_once = PTHREAD_ONCE_INIT;

static void resolve(void) {
    real.ctx_new = (SSL_CTX * (*)(const SSL_METHOD *)) real_symbol("SSL_CTX_new");
    real.ctx_new_ex = (SSL_CTX * (*)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *)) real_symbol("SSL_CTX_new_ex");
    real.ssl_new = (SSL * (*)(SSL_CTX *)) real_symbol("SSL_new");
    real.set_ssl_ctx = (SSL_CTX * (*)(SSL *, SSL_CTX *)) real_symbol("SSL_set_SSL_CTX");
    real.get_cb = (keylog_callback (*)(const SSL_CTX *))real_symbol("SSL_CTX_get_keylog_callback");
    real.set_cb = (void (*)(SSL_CTX *, keylog_callback))real_symbol("SSL_CTX_set_keylog_callback");
    if (!real.set_cb) note("this OpenSSL has no SSL_CTX_set_keylog_callback (1.1.1 or later needed)", NULL, 0);
    open_keylog();
}

static void *must(void *fn, const char *name) {
    if (!fn) {
        note("cannot find the real OpenSSL function", name, 0);
        abort();  /* called from code linked against libssl, so libssl is loaded: cannot happen */
    }
    return fn;
}

static void install(SSL_CTX *ctx) {
    if (!ctx || keylog_fd < 0 || !real.set_cb) return;
    /* A callback the program installed itself stays (it may be its own key log). */
    if (real.get_cb && real.get_cb(ctx) != NULL) return;
    real.set_cb(ctx, write_line);
}

EXPORT SSL_CTX *SSL_CTX_new(const SSL_METHOD *method) {
    pthread_once(&resolve_once, resolve);
    SSL_CTX *ctx = ((SSL_CTX * (*)(const SSL_METHOD *)) must((void *)real.ctx_new, "SSL_CTX_new"))(method);
    install(ctx);
    return ctx;
}

EXPORT SSL_CTX *SSL_CTX_new_ex(OSSL_LIB_CTX *libctx, const char *propq, const SSL_METHOD *method) {
    pthread_once(&resolve_once, resolve);
    SSL_CTX *ctx = ((SSL_CTX * (*)(OSSL_LIB_CTX *, const char *, const SSL_METHOD *))
                        must((void *)real.ctx_new_ex, "SSL_CTX_new_ex"))(libctx, propq, method);
    install(ctx);
    return ctx;
}

/* SSL_new and SSL_set_SSL_CTX (SNI switches contexts) cover contexts made before the library
 * was loaded or by a path that did not go through the two constructors above. */
EXPORT SSL *SSL_new(SSL_CTX *ctx) {
    pthread_once(&resolve_once, resolve);
    install(ctx);
    return ((SSL * (*)(SSL_CTX *)) must((void *)real.ssl_new, "SSL_new"))(ctx);
}

EXPORT SSL_CTX *SSL_set_SSL_CTX(SSL *ssl, SSL_CTX *ctx) {
    pthread_once(&resolve_once, resolve);
    install(ctx);
    return ((SSL_CTX * (*)(SSL *, SSL_CTX *)) must((void *)real.set_ssl_ctx, "SSL_set_SSL_CTX"))(ssl, ctx);
}
