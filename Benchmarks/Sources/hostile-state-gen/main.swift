// hostile-state-gen KIND N OUT.pcap — writes one capture of S2Synth's hostile-state corpus
// (HostileState.Kind: what a peer can make the analyzer remember), for scripts/hostile-scaling.sh.
// `hostile-state-gen --list` prints the kinds.
import S2Synth
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

let args = CommandLine.arguments
if args.count == 2 && args[1] == "--list" {
    for k in HostileState.Kind.allCases { print(k.rawValue) }
    exit(0)
}
guard args.count == 4, let kind = HostileState.Kind(rawValue: args[1]), let n = Int(args[2]), n > 0 else {
    fputs("usage: hostile-state-gen KIND N OUT.pcap (kinds: \(HostileState.Kind.allCases.map(\.rawValue).joined(separator: ", ")))\n", stderr)
    exit(2)
}
let bytes = HostileState.capture(kind, n: n)
guard let f = fopen(args[3], "wb") else {
    fputs("hostile-state-gen: cannot write \(args[3])\n", stderr)
    exit(2)
}
let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
fclose(f)
guard written == bytes.count else {
    fputs("hostile-state-gen: short write to \(args[3])\n", stderr)
    exit(1)
}
