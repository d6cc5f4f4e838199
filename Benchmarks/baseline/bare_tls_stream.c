/*
 * bare_tls_stream — the baseline palm's TLS throughput is compared against: a plain OpenSSL
 * TLS 1.3 stream over loopback, blocking sockets, one sender thread and one receiver thread,
 * writes of WRITE_SIZE bytes, same cipher suite and certificates as palm. No framing, no checks.
 *
 * usage: bare_tls_stream CERT KEY CA BYTES [WRITE_SIZE]
 * prints: bytes seconds
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *cert, *key, *ca;
static long long total;
static size_t wsize = 256 * 1024;
static int listen_fd;

static SSL_CTX *make_ctx(void) {
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384");
    SSL_CTX_set_num_tickets(ctx, 0);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1
        || SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        ERR_print_errors_fp(stderr);
        exit(1);
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return ctx;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *receiver(void *arg) {
    (void)arg;
    SSL_CTX *ctx = make_ctx();
    int fd = accept(listen_fd, NULL, NULL);
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_accept(ssl) != 1) { ERR_print_errors_fp(stderr); exit(1); }
    char *buf = malloc(wsize);
    long long got = 0;
    while (got < total) {
        size_t n = 0;
        if (SSL_read_ex(ssl, buf, wsize, &n) != 1) { ERR_print_errors_fp(stderr); exit(1); }
        got += (long long)n;
    }
    SSL_write(ssl, "k", 1);  /* acknowledge: the sender stops its clock on this byte */
    SSL_shutdown(ssl);
    SSL_free(ssl);
    close(fd);
    free(buf);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: %s CERT KEY CA BYTES [WRITE_SIZE]\n", argv[0]); return 2; }
    cert = argv[1]; key = argv[2]; ca = argv[3]; total = atoll(argv[4]);
    if (argc > 5) wsize = (size_t)atoll(argv[5]);

    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    bind(listen_fd, (struct sockaddr *)&addr, sizeof addr);
    listen(listen_fd, 1);
    socklen_t len = sizeof addr;
    getsockname(listen_fd, (struct sockaddr *)&addr, &len);
    pthread_t t;
    pthread_create(&t, NULL, receiver, NULL);

    SSL_CTX *ctx = make_ctx();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("connect"); return 1; }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) { ERR_print_errors_fp(stderr); return 1; }
    char *buf = malloc(wsize);
    memset(buf, 0xA5, wsize);
    double start = now();
    long long sent = 0;
    while (sent < total) {
        size_t n = (size_t)(total - sent) < wsize ? (size_t)(total - sent) : wsize, w = 0;
        if (SSL_write_ex(ssl, buf, n, &w) != 1) { ERR_print_errors_fp(stderr); return 1; }
        sent += (long long)w;
    }
    char ack;
    SSL_read(ssl, &ack, 1);
    double elapsed = now() - start;
    pthread_join(t, NULL);
    printf("%lld %.6f\n", total, elapsed);
    return 0;
}
