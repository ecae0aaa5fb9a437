/* test_sdnotify.c - unit tests for src/core/sdnotify.c: the datagram reaches a socket the test
 * binds (a path and an abstract "@name"), nothing is sent without NOTIFY_SOCKET, and bad
 * addresses are refused without sending. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../src/core/err.h"
#include "../../src/core/sdnotify.h"
#include "unit.h"

/* Binds a datagram socket to addr ("/path" or "@abstract"); returns the fd. */
static int bind_dgram(const char *addr)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) abort();
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t n = strlen(addr);
    memcpy(sa.sun_path, addr, n);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (addr[0] == '/'));
    if (addr[0] == '@') sa.sun_path[0] = '\0';
    if (bind(fd, (struct sockaddr *)&sa, len) < 0) {
        printf("# bind %s: %s\n", addr, strerror(errno));
        abort();
    }
    return fd;
}

/* The next datagram on fd (waits at most 2 s), NUL-terminated in buf; its length or -1. */
static ssize_t recv_one(int fd, char *buf, size_t cap)
{
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = recv(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

TEST(path_socket)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/herald-test-notify-%ld", (long)getpid());
    unlink(path);
    int fd = bind_dgram(path);
    setenv("NOTIFY_SOCKET", path, 1);
    CHECK_EQ(sdnotify("READY=1\nSTATUS=listening on http://127.0.0.1:8080"), 1);
    char buf[256];
    CHECK_EQ(recv_one(fd, buf, sizeof(buf)), (ssize_t)strlen("READY=1\nSTATUS=listening on http://127.0.0.1:8080"));
    CHECK(strcmp(buf, "READY=1\nSTATUS=listening on http://127.0.0.1:8080") == 0);
    CHECK_EQ(sdnotifyf("STOPPING=1\nSTATUS=%s %d", "stopping", 3), 1);
    recv_one(fd, buf, sizeof(buf));
    CHECK(strcmp(buf, "STOPPING=1\nSTATUS=stopping 3") == 0);
    unsetenv("NOTIFY_SOCKET");
    close(fd);
    unlink(path);
}

TEST(abstract_socket)
{
    char name[64];
    snprintf(name, sizeof(name), "@herald-test-notify-%ld", (long)getpid());
    int fd = bind_dgram(name);
    setenv("NOTIFY_SOCKET", name, 1);
    CHECK_EQ(sdnotify("READY=1"), 1);
    char buf[64];
    CHECK_EQ(recv_one(fd, buf, sizeof(buf)), 7);
    CHECK(strcmp(buf, "READY=1") == 0);
    /* the name is exact: a longer or shorter one is another socket */
    char other[80];
    snprintf(other, sizeof(other), "%sx", name);
    CHECK_EQ(sdnotify_to(other, "READY=1"), HR_EIO);
    unsetenv("NOTIFY_SOCKET");
    close(fd);
}

TEST(nothing_without_the_variable)
{
    unsetenv("NOTIFY_SOCKET");
    CHECK_EQ(sdnotify("READY=1"), 0);
    CHECK_EQ(sdnotifyf("READY=%d", 1), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    CHECK_EQ(sdnotify("READY=1"), 0);
    CHECK_EQ(sdnotify_to(NULL, "READY=1"), 0);
    unsetenv("NOTIFY_SOCKET");
}

TEST(bad_addresses)
{
    CHECK_EQ(sdnotify_to("relative/path", "READY=1"), HR_EINVAL);
    CHECK_EQ(sdnotify_to("vsock:2:1234", "READY=1"), HR_EINVAL);
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1);
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    CHECK_EQ(sdnotify_to(longp, "READY=1"), HR_EINVAL);
    longp[0] = '@';
    CHECK_EQ(sdnotify_to(longp, "READY=1"), HR_EINVAL);
    /* the longest that fit: 107 bytes of path (+ NUL), 108 of abstract name */
    longp[0] = '/';
    longp[108] = '\0';
    CHECK_EQ(sdnotify_to(longp, "READY=1"), HR_EINVAL);
    longp[107] = '\0';
    CHECK_EQ(sdnotify_to(longp, "READY=1"), HR_EIO); /* fits; nobody listens there */
    /* nobody bound: the send fails, never blocks */
    CHECK_EQ(sdnotify_to("/tmp/herald-test-notify-nobody/x", "READY=1"), HR_EIO);
}

int main(void)
{
    RUN(path_socket);
    RUN(abstract_socket);
    RUN(nothing_without_the_variable);
    RUN(bad_addresses);
    return UNIT_DONE();
}
