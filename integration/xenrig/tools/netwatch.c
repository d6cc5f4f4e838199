/* netwatch: what a migration looks like from the network, the same way for any toolstack.
 * From dom0, every 10 ms: an ICMP echo request to the guest, and one byte on a TCP connection to
 * the guest's echo server (which sends it back). Until SIGTERM or SIGINT, then prints one line:
 *   ping_gap_ms=G ping_sent=S ping_recv=R tcp=alive|broken tcp_gap_ms=T tcp_sent=N tcp_echoed=M
 * G is the network-observed downtime: the longest time between two consecutive echo replies.
 * T the same for the TCP echoes; tcp=broken when the connection was reset or closed, or when not
 * every byte came back within 20 s of the stop. Prints "netwatch: ready" once the first reply and the first echo arrived
 * (exits 1 if that takes more than 60 s).
 *   netwatch IPV4 PORT */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

static uint16_t checksum(const void *data, size_t len) {
    const uint8_t *p = data; uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2) sum += (uint32_t)p[i] << 8 | p[i + 1];
    if (len & 1) sum += (uint32_t)p[len - 1] << 8;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: netwatch IPV4 PORT\n"); return 2; }
    struct sockaddr_in guest = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
    if (inet_pton(AF_INET, argv[1], &guest.sin_addr) != 1) { fprintf(stderr, "netwatch: bad address %s\n", argv[1]); return 2; }
    signal(SIGTERM, on_signal); signal(SIGINT, on_signal); signal(SIGPIPE, SIG_IGN);
    int icmp = socket(AF_INET, SOCK_RAW | SOCK_NONBLOCK, IPPROTO_ICMP);
    if (icmp < 0) { perror("netwatch: raw ICMP socket"); return 1; }
    int tcp = -1;
    uint16_t id = (uint16_t)getpid(), seq = 0;
    long sent = 0, recvd = 0, tsent = 0, techoed = 0;
    double last_reply = 0, gap = 0, last_echo = 0, tgap = 0, next = now(), start = now();
    int ready = 0, broken = 0;
    while (!stop) {
        double t = now();
        if (t >= next) {
            next += 0.010;
            if (next < t) next = t + 0.010;    /* never a burst after a stall */
            struct { struct icmphdr h; char pad[8]; } req = { 0 };
            req.h.type = ICMP_ECHO; req.h.un.echo.id = htons(id); req.h.un.echo.sequence = htons(++seq);
            req.h.checksum = checksum(&req, sizeof req);
            if (sendto(icmp, &req, sizeof req, 0, (struct sockaddr *)&guest, sizeof guest) > 0) sent++;
            if (tcp < 0 && !broken) {
                tcp = socket(AF_INET, SOCK_STREAM, 0);
                struct timeval tv = { .tv_sec = 2 };
                setsockopt(tcp, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
                if (connect(tcp, (struct sockaddr *)&guest, sizeof guest) != 0) { close(tcp); tcp = -1; }
                else fcntl(tcp, F_SETFL, O_NONBLOCK);
            }
            if (tcp >= 0 && ready) {
                if (send(tcp, "x", 1, 0) == 1) tsent++;
                else if (errno != EAGAIN) broken = 1;
            } else if (tcp >= 0 && tsent == 0) {
                if (send(tcp, "x", 1, 0) == 1) tsent++;
            }
        }
        struct pollfd p[2] = { { .fd = icmp, .events = POLLIN }, { .fd = tcp, .events = POLLIN } };
        int wait_ms = (int)((next - now()) * 1000); if (wait_ms < 0) wait_ms = 0;
        if (poll(p, tcp >= 0 ? 2 : 1, wait_ms) <= 0) goto check_ready;
        if (p[0].revents & POLLIN) {
            char buf[1500];
            ssize_t n;
            while ((n = recv(icmp, buf, sizeof buf, 0)) > 0) {
                struct iphdr *ip = (struct iphdr *)buf;
                size_t hl = (size_t)ip->ihl * 4;
                if ((size_t)n < hl + sizeof(struct icmphdr)) continue;
                struct icmphdr *h = (struct icmphdr *)(buf + hl);
                if (h->type != ICMP_ECHOREPLY || ntohs(h->un.echo.id) != id) continue;
                double r = now();
                if (ready && last_reply > 0 && r - last_reply > gap) gap = r - last_reply;
                last_reply = r; recvd++;
            }
        }
        if (tcp >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            char buf[256];
            ssize_t n = recv(tcp, buf, sizeof buf, 0);
            if (n > 0) {
                double r = now();
                if (ready && last_echo > 0 && r - last_echo > tgap) tgap = r - last_echo;
                last_echo = r; techoed += n;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                broken = 1; close(tcp); tcp = -1;
            }
        }
    check_ready:
        if (!ready && recvd > 0 && techoed > 0) {
            ready = 1; printf("netwatch: ready\n"); fflush(stdout);
        } else if (!ready && now() - start > 60) {
            printf("netwatch: no reply from %s within 60 s (ping %ld/%ld, tcp %s)\n", argv[1], recvd, sent, tcp >= 0 ? "connected" : "not connected");
            return 1;
        }
    }
    /* Whatever is still in flight after the stop has time to come back: after a long outage TCP
     * retransmits on a backed-off timer, seconds apart. */
    double end = now() + 20;
    while (tcp >= 0 && techoed < tsent && now() < end) {
        struct pollfd p = { .fd = tcp, .events = POLLIN };
        if (poll(&p, 1, 50) > 0) { char buf[256]; ssize_t n = recv(tcp, buf, sizeof buf, 0); if (n > 0) techoed += n; else break; }
    }
    printf("ping_gap_ms=%.0f ping_sent=%ld ping_recv=%ld tcp=%s tcp_gap_ms=%.0f tcp_sent=%ld tcp_echoed=%ld\n",
           gap * 1000, sent, recvd, (!broken && tcp >= 0 && techoed == tsent) ? "alive" : "broken", tgap * 1000, tsent, techoed);
    return 0;
}
