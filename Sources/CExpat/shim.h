// Debian's expat.h declares the billion-laughs limits only under XML_DTD.
#ifndef XML_DTD
#define XML_DTD 1
#endif
#include <expat.h>

// Reparse deferral (CVE-2023-52425) is in expat >= 2.6.0 and in some Debian 2.5.0 security builds
// (bookworm's deb12u2 and later) but not in others, with the same version number: a declaration
// that is weak compiles and links against either header and library, and the call is skipped
// where the library lacks it (those builds do not defer, which is what S2Scope wants).
XMLPARSEAPI(XML_Bool) XML_SetReparseDeferralEnabled(XML_Parser parser, XML_Bool enabled) __attribute__((weak));

/// Parse eagerly: returns 1 when deferral was switched off, 0 when this expat has no deferral.
static inline int s2_disable_reparse_deferral(XML_Parser parser) {
    if (!XML_SetReparseDeferralEnabled) return 0;
    return XML_SetReparseDeferralEnabled(parser, XML_FALSE) == XML_TRUE;
}
