// Debian's expat.h declares the billion-laughs limits only under XML_DTD.
#ifndef XML_DTD
#define XML_DTD 1
#endif
#include <expat.h>
