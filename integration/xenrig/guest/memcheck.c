/* memcheck: the PVH guest's workload. Keeps rewriting a memory region at a steady rate and, before
 * every rewrite, checks that the page still holds exactly what it last wrote — so a page lost or
 * torn by a migration shows up as a FAIL line on the console. Prints a progress line every 5 s.
 *   memcheck [MIB [PAGES_PER_STEP [STEP_MS]]]   (defaults 48, 64, 100: ~640 pages/s dirtied) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)

static uint64_t pattern(uint64_t page, uint64_t gen) {
    uint64_t x = (page + 1) * 0x9E3779B97F4A7C15ULL ^ (gen + 1) * 0xC2B2AE3D27D4EB4FULL;
    x ^= x >> 31; x *= 0xBF58476D1CE4E5B9ULL; x ^= x >> 29;
    return x;
}

static void fill(uint64_t *p, uint64_t page, uint64_t gen) {
    uint64_t s = pattern(page, gen);
    for (int k = 0; k < WORDS; k++) p[k] = s + (uint64_t)k;
}

static int check(const uint64_t *p, uint64_t page, uint64_t gen) {
    uint64_t s = pattern(page, gen);
    for (int k = 0; k < WORDS; k++) if (p[k] != s + (uint64_t)k) return k;
    return -1;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? (size_t)atoi(argv[1]) : 48;
    size_t step = argc > 2 ? (size_t)atoi(argv[2]) : 64;
    long step_ms = argc > 3 ? atol(argv[3]) : 100;
    size_t pages = (mib << 20) / PAGE;
    uint64_t *mem = aligned_alloc(PAGE, pages * PAGE);
    uint64_t *gen = calloc(pages, sizeof *gen);
    if (!mem || !gen) { printf("memcheck: FAIL cannot allocate %zu MiB\n", mib); return 1; }
    for (size_t i = 0; i < pages; i++) fill(mem + i * WORDS, i, 0);
    printf("memcheck: %zu MiB written, rewriting %zu pages every %ld ms\n", mib, step, step_ms);
    fflush(stdout);
    size_t next = 0; uint64_t checked = 0, sweeps = 0; time_t last = time(NULL);
    struct timespec nap = { step_ms / 1000, (step_ms % 1000) * 1000000L };
    for (;;) {
        for (size_t n = 0; n < step; n++) {
            size_t i = next;
            int bad = check(mem + i * WORDS, i, gen[i]);
            if (bad >= 0) {
                printf("memcheck: FAIL page %zu word %d generation %llu\n", i, bad, (unsigned long long)gen[i]);
                fflush(stdout);
                return 2;
            }
            gen[i]++;
            fill(mem + i * WORDS, i, gen[i]);
            checked++;
            if (++next == pages) { next = 0; sweeps++; }
        }
        nanosleep(&nap, NULL);
        time_t now = time(NULL);
        if (now - last >= 5) {
            printf("memcheck: ok, %llu pages checked, %llu full sweeps\n",
                   (unsigned long long)checked, (unsigned long long)sweeps);
            fflush(stdout);
            last = now;
        }
    }
}
