// libFuzzer target 'xmpp' (see FuzzTargets/XMPPFuzz.swift). Build and run through scripts/fuzz.sh.
//   fuzz-xmpp CORPUS_DIR [libFuzzer flags]      fuzz
//   fuzz-xmpp crash-file                        reproduce one input
//   fuzz-xmpp --make-seeds DIR [REPO_ROOT]      write the seed corpus
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    XMPPFuzz.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(.xmpp) { data, size in
    XMPPFuzz.run(FuzzMain.bytes(data, size))
    return 0
}
