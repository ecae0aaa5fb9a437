/* err.h - the closed set of herald error codes.
 *
 * Functions return 0 (or a positive count) on success and a negative HR_E* code on failure.
 * hr_strerror() gives a short human text. Each protocol has exactly one place that turns a
 * code into its wire error (an HTTP status with a reason, a close code, a reason code). */
#ifndef HERALD_ERR_H
#define HERALD_ERR_H

enum {
    HR_OK = 0,
    HR_EAGAIN = -1,       /* need more input / try again later */
    HR_ENOMEM = -2,       /* allocation failed */
    HR_EFULL = -3,        /* a bounded queue or buffer would overflow */
    HR_EPROTO = -4,       /* peer broke the protocol */
    HR_EIO = -5,          /* socket error or peer closed */
    HR_EINVAL = -6,       /* invalid argument or value */
    HR_ENOTFOUND = -7,    /* no such thing */
    HR_ETIMEDOUT = -8,    /* a deadline passed */
    /* HTTP request errors, each mapped to one status by the HTTP server */
    HR_EBADREQ = -20,     /* 400 malformed request line, header or framing */
    HR_EURITOOLONG = -21, /* 414 request-target over the limit */
    HR_EHDRTOOBIG = -22,  /* 431 header section (or one field) over the limit, or too many fields */
    HR_EVERSION = -23,    /* 505 HTTP major version other than 1 */
    HR_EBODYTOOBIG = -24, /* 413 body over the limit */
    HR_ENOTIMPL = -25,    /* 501 unsupported transfer coding or feature */
    HR_EMETHOD = -26,     /* 405 method not allowed on this resource */
    HR_ECHANNEL = -27,    /* 400 invalid channel name */
    HR_EFORBIDDEN = -28,  /* 403 e.g. origin not allowed */
    HR_ESHUTDOWN = -29,   /* 503 server is shutting down */
    HR_EUNAVAIL = -30,    /* 503 a backend (the Redis engine) cannot be reached */
    HR_EAUTH = -31,       /* 401 missing or invalid credential */
    HR_ESTOREFULL = -32,  /* 507 the store has no room (disk or map full): publishes refused */
    HR_EHISTFULL = -33,   /* 507 history memory at max_history_memory (history_policy = refuse): publish refused */
    HR_ERETAINED = -34,   /* 507 retained messages at max_retained or max_retained_bytes: retained publish refused */
};

/* Returns a static, never-NULL text for rc (also for unknown codes). */
const char *hr_strerror(int rc);

#endif
