/* readloop: the floor for any pcap analyzer on this machine — libpcap reads every packet of a
 * capture and does nothing else (touches each packet's first and last byte so the read is real).
 * Used by scripts/bench.sh as the baseline next to s2scope and tshark.
 *
 *   gcc -O2 -o readloop scripts/readloop.c -lpcap
 *   readloop FILE.pcap   ->  "packets <n> bytes <captured bytes> checksum <x>" on stdout
 */
#include <pcap/pcap.h>
#include <stdint.h>
#include <stdio.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FILE.pcap\n", argv[0]);
        return 2;
    }
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline(argv[1], err);
    if (!p) {
        fprintf(stderr, "readloop: %s\n", err);
        return 2;
    }
    struct pcap_pkthdr *h;
    const u_char *data;
    uint64_t packets = 0, bytes = 0, sum = 0;
    int rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        packets++;
        bytes += h->caplen;
        if (h->caplen) sum += data[0] + data[h->caplen - 1];
    }
    if (rc == PCAP_ERROR) {
        fprintf(stderr, "readloop: %s\n", pcap_geterr(p));
        pcap_close(p);
        return 1;
    }
    printf("packets %llu bytes %llu checksum %llu\n", (unsigned long long)packets, (unsigned long long)bytes,
           (unsigned long long)sum);
    pcap_close(p);
    return 0;
}
