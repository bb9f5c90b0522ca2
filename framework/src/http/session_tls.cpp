// The HTTP session over TLS: session.cpp's templates instantiated for
// ssl::stream<tcp_socket&>, in a translation unit of their own. Instantiated
// beside the plain session, OpenSSL's composed operations used up g++ 12's
// per-unit inlining budget and the plain session lost inlining it had:
// +250 instructions per plaintext request (bench/instructions, one
// connection), back to the old count with this split.
//
// g++ warns when a type with linkage (the session's coroutine frame) uses an
// anonymous-namespace type from an included file, because another unit
// including it would see a different type. Only this unit instantiates the
// TLS session, so the frame is defined once.
#if defined(__GNUC__) && !defined(__clang__)  // a g++-only warning; clang has no such option
#pragma GCC diagnostic ignored "-Wsubobject-linkage"
#endif
#define KEEL_SESSION_TLS_UNIT
#include "http/session.cpp"  // NOLINT(bugprone-suspicious-include): one unit for the TLS session, see above
