/* err.c - texts for HR_E* codes. */
#include "err.h"

const char *hr_strerror(int rc)
{
    switch (rc) {
    case HR_OK: return "ok";
    case HR_EAGAIN: return "try again";
    case HR_ENOMEM: return "out of memory";
    case HR_EFULL: return "queue full";
    case HR_EPROTO: return "protocol error";
    case HR_EIO: return "i/o error";
    case HR_EINVAL: return "invalid value";
    case HR_ENOTFOUND: return "not found";
    case HR_ETIMEDOUT: return "timed out";
    case HR_EBADREQ: return "bad request";
    case HR_EURITOOLONG: return "request-target too long";
    case HR_EHDRTOOBIG: return "request header fields too large";
    case HR_EVERSION: return "HTTP version not supported";
    case HR_EBODYTOOBIG: return "request body too large";
    case HR_ENOTIMPL: return "not supported";
    case HR_EMETHOD: return "method not allowed";
    case HR_ECHANNEL: return "invalid channel name";
    case HR_EFORBIDDEN: return "forbidden";
    case HR_ESHUTDOWN: return "shutting down";
    case HR_EUNAVAIL: return "backend unavailable";
    case HR_ESTOREFULL: return "store full";
    case HR_EHISTFULL: return "history memory full (max_history_memory)";
    case HR_ERETAINED: return "too many retained messages (max_retained, max_retained_bytes)";
    case HR_EAUTH: return "unauthorized";
    default: return "unknown error";
    }
}
