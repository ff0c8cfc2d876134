// Micro-benchmark of the XMPP stream layer alone: tens of MB of s2s stanzas fed in MSS-sized
// chunks to XMPPStreamDecoder (expat push parser, element trees, frame mapping), events counted;
// timed in process CPU seconds.
//   xmpp-bench [MEGABYTES=50] [RUNS=5]
import S2Model
import S2XMPP

#if canImport(Glibc)
import Glibc
#endif

final class CountingSink: XMPPEventSink {
    var events = 0
    var anomalies = 0
    func xmppEvent(_ event: XMPPEvent) { events += 1 }
    func xmppAnomaly(_ anomaly: Anomaly) { anomalies += 1 }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)  // CPU time: stable on a shared machine
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let args = CommandLine.arguments
let megabytes = args.count > 1 ? Int(args[1]) ?? 50 : 50
let runs = args.count > 2 ? Int(args[2]) ?? 5 : 5

// A realistic mix: messages with UTF-8 bodies and entities, presence, IQs, a dialback element.
var stream = Array("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' to='b.example' from='a.example' version='1.0'>".utf8)
var k = 0
while stream.count < megabytes << 20 {
    k += 1
    let body = String(repeating: "Grüße, wörld &amp; &lt;friends&gt; — ", count: 1 + k % 40)
    stream += Array("<message from='user\(k % 97)@a.example/res' to='peer\(k % 89)@b.example' id='m\(k)' type='chat'><body>\(body)</body><active xmlns='http://jabber.org/protocol/chatstates'/></message>".utf8)
    if k % 3 == 0 { stream += Array("<presence from='user\(k % 97)@a.example/res' to='peer\(k % 89)@b.example'><show>away</show><status>out</status></presence>".utf8) }
    if k % 5 == 0 { stream += Array("<iq from='a.example' to='b.example' id='p\(k)' type='get'><ping xmlns='urn:xmpp:ping'/></iq>".utf8) }
    if k % 50 == 0 { stream += Array("<db:result from='a\(k).example' to='b.example'>574904085be36e0b24eb9037400643f4f45cf4e3215d998cd4e0101a73e4d282</db:result>".utf8) }
    if k % 7 == 0 { stream += Array(" ".utf8) }
}

var best = Double.infinity
var events = 0
for _ in 0..<runs {
    let sink = CountingSink()
    let decoder = XMPPStreamDecoder(direction: .clientToServer, sink: sink)
    let t0 = now()
    stream.withUnsafeBytes { all in
        var offset = 0
        var frame = 1
        while offset < all.count {
            let n = min(1448, all.count - offset)
            decoder.feed(UnsafeRawBufferPointer(rebasing: all[offset..<(offset + n)]), at: UInt64(offset),
                         frame: FrameRef(input: 0, number: frame, time: Timestamp(seconds: Int64(frame), nanoseconds: 0)))
            offset += n
            frame += 1
        }
    }
    let dt = now() - t0
    best = min(best, dt)
    events = sink.events
    precondition(sink.anomalies == 0, "the benchmark stream must parse cleanly")
}
let mb = Double(stream.count) / 1e6
func fixed(_ v: Double, _ digits: Int) -> String {
    var p = 1.0
    for _ in 0..<digits { p *= 10 }
    let r = (v * p).rounded() / p
    return digits == 0 ? String(Int(r)) : String(r)
}
print("xmpp-bench: \(fixed(mb, 1)) MB, \(events) events, best of \(runs): \(fixed(best, 3)) s = \(fixed(mb / best, 1)) MB/s, \(fixed(Double(events) / best, 0)) events/s")
