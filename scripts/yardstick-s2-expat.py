#!/usr/bin/env python3
"""Derives a second C yardstick from the shared pcap_xml.c: the same program, with expat set up as
S2Scope sets it up (XMPPStreamDecoder.makeParser): every handler S2Scope installs (empty here),
namespace triplets, eager parsing (reparse deferral off) and the billion-laughs limits. S2Scope
installs no character-data handler at creation: only inside top-level elements that are not stanzas
(dialback keys, stream errors), a small part of the bytes, so none is installed here. Timed
beside the yardstick by `make bench`, it shows how much of the yardstick's time is the XML parse
S2Scope must do anyway: what is left of the budget for everything S2Scope adds.

    yardstick-s2-expat.py IN.c OUT.c      (exit 3 when IN.c no longer has the expected code)
"""
import sys

src = open(sys.argv[1]).read()
create = """        d->p = XML_ParserCreateNS(NULL, '|');
        XML_SetUserData(d->p, d);
        XML_SetElementHandler(d->p, on_start, on_end);"""
end_handler = "static void XMLCALL on_end(void *u, const XML_Char *name) { ((dir_t *)u)->depth--; (void)name; }"
if create not in src or end_handler not in src or "#include <expat.h>" not in src:
    sys.stderr.write(f"{sys.argv[1]}: not the expected yardstick source; the S2Scope-expat variant is not built\n")
    sys.exit(3)

handlers = end_handler + """
static void XMLCALL on_ns(void *u, const XML_Char *p, const XML_Char *uri) { (void)u; (void)p; (void)uri; }
static void XMLCALL on_comment(void *u, const XML_Char *d) { (void)u; (void)d; }
static void XMLCALL on_pi(void *u, const XML_Char *t, const XML_Char *d) { (void)u; (void)t; (void)d; }
static void XMLCALL on_decl(void *u, const XML_Char *v, const XML_Char *e, int s) { (void)u; (void)v; (void)e; (void)s; }
static void XMLCALL on_doctype(void *u, const XML_Char *n, const XML_Char *s, const XML_Char *p, int i) {
    (void)u; (void)n; (void)s; (void)p; (void)i;
}"""
setup = """        d->p = XML_ParserCreateNS("UTF-8", '|');
        XML_SetReturnNSTriplet(d->p, 1);
        XML_SetUserData(d->p, d);
        XML_SetElementHandler(d->p, on_start, on_end);
        XML_SetNamespaceDeclHandler(d->p, on_ns, NULL);
        XML_SetCommentHandler(d->p, on_comment);
        XML_SetProcessingInstructionHandler(d->p, on_pi);
        XML_SetXmlDeclHandler(d->p, on_decl);
        XML_SetStartDoctypeDeclHandler(d->p, on_doctype);
        s2_disable_reparse_deferral(d->p);
        XML_SetBillionLaughsAttackProtectionMaximumAmplification(d->p, 100);
        XML_SetBillionLaughsAttackProtectionActivationThreshold(d->p, 1 << 20);"""
out = src.replace("#include <expat.h>", '#include "shim.h"  /* S2Scope\'s CExpat shim: expat.h and the deferral switch */', 1)
out = out.replace(end_handler, handlers, 1).replace(create, setup, 1)
open(sys.argv[2], "w").write(out)
