/* sdnotify.h - state notifications to the service manager: systemd's sd_notify protocol
 * without libsystemd. A notification is one datagram of "KEY=VALUE" lines ("READY=1",
 * "STOPPING=1", "STATUS=text", ...) sent to the AF_UNIX socket that $NOTIFY_SOCKET names: a
 * file system path, or "@name" for the abstract namespace. Without the variable every call does
 * nothing, so herald started by hand or by the tests behaves as before. No state is kept. */
#ifndef HERALD_SDNOTIFY_H
#define HERALD_SDNOTIFY_H

/* Sends state (lines separated by '\n', e.g. "READY=1\nSTATUS=listening") to $NOTIFY_SOCKET.
 * Never blocks. Returns 1 when sent; 0 when NOTIFY_SOCKET is unset or empty (nothing to do);
 * HR_EINVAL when the variable is not an absolute path or "@name", or too long; HR_EIO when the
 * socket cannot be made or the datagram not sent (errno tells why). */
int sdnotify(const char *state);

/* As sdnotify(), to addr (a path or "@name") instead of $NOTIFY_SOCKET; addr NULL or "" is
 * "nothing to do" (0). */
int sdnotify_to(const char *addr, const char *state);

/* sdnotify() with the state built by printf from fmt; a state longer than 1 KiB is cut. */
int sdnotifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
