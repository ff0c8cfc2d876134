#include <pcap/pcap.h>
#include <errno.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/// State of a network interface by name, as a live capture needs it: 0 and its index, whether it is
/// administratively up and whether it has a carrier (running); -1 with errno when it does not exist.
/// An AF_UNIX socket serves for the ioctls: it needs no privilege and sees the caller's network
/// namespace (unlike /sys, which shows the namespace it was mounted in).
static inline int s2_interface_state(const char *name, unsigned *index, int *up, int *running) {
    struct ifreq ifr;
    if (strlen(name) >= sizeof(ifr.ifr_name)) { errno = ENODEV; return -1; }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    memset(&ifr, 0, sizeof ifr);
    strncpy(ifr.ifr_name, name, sizeof(ifr.ifr_name) - 1);
    int rc = ioctl(fd, SIOCGIFINDEX, &ifr);
    if (rc == 0) {
        *index = (unsigned)ifr.ifr_ifindex;
        rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
        if (rc == 0) {
            *up = (ifr.ifr_flags & IFF_UP) != 0;
            *running = (ifr.ifr_flags & IFF_RUNNING) != 0;
        }
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}
