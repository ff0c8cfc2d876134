import S2TestSupport
import Foundation
import S2Model
import S2Synth

/// Builds hostile captures in memory (nothing big is committed): a valid dialback exchange
/// first, so every test can check that what came before the damage is still reported, then the
/// hostile part — as transcript steps or as raw TCP frames for sizes a transcript line would
/// make slow (a 20 MB stanza, 200,000 SYNs).
struct HostileCapture {
    static let key = "574904085be36e0b24eb9037400643f4f45cf4e3215d998cd4e0101a73e4d282"

    /// a.example (10.0.0.1) validated at b.example (10.0.0.2) with a db:verify on connection 2:
    /// one dialback exchange, outcome valid.
    static let validDialback = """
        C> $HDR to='b.example' from='a.example'>
        S> $HDR from='b.example' to='a.example' id='s1'>
        S> <stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>
        C> <db:result from='a.example' to='b.example'>\(key)</db:result>
        @2 10.0.0.2 -> 10.0.0.1
        2C> $HDR to='a.example' from='b.example'>
        2S> $HDR from='a.example' to='b.example' id='s2'>
        2S> <stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>
        2C> <db:verify from='b.example' to='a.example' id='s1'>\(key)</db:verify>
        2S> <db:verify from='a.example' to='b.example' id='s1' type='valid'/>
        S> <db:result from='b.example' to='a.example' type='valid'/>
        C> <message from='u@a.example' to='v@b.example' id='m1'><body>hi</body></message>
        """

    static let header = Array((Transcript.header + " to='b.example' from='evil.example'>").utf8)
    static let serverHeader = Array((Transcript.header + " from='b.example' to='evil.example' id='s9'>").utf8)

    var writer = PcapWriter()
    var time: Timestamp
    /// Frames written so far (frame numbers are 1-based).
    var frames = 0

    /// Starts with `transcript` (the valid dialback exchange by default).
    init(transcript: String = HostileCapture.validDialback) throws {
        let t = try Transcript(transcript)
        for f in t.frames { writer.add(f.bytes, time: f.time) }
        frames = t.frames.count
        time = (t.frames.last?.time ?? Timestamp(seconds: 1_700_000_000, nanoseconds: 0)).adding(seconds: 1)
    }

    var bytes: [UInt8] { writer.bytes }

    mutating func add(_ frame: [UInt8]) {
        writer.add(frame, time: time)
        frames += 1
        time = time.adding(seconds: 0.0001)
    }

    /// One TCP connection from `client`:`port` to 10.0.0.2:5269: handshake, the server's stream
    /// header, then `clientData` in MSS-sized segments. It stays open (the capture ends first).
    mutating func connection(client: String = "10.0.0.9", port: UInt16 = 41000, clientData: [UInt8], mss: Int = 1400) {
        let c = PacketBuilder.addressBytes(client), s = PacketBuilder.addressBytes("10.0.0.2")
        var cseq: UInt32 = 7000, sseq: UInt32 = 900_000
        add(PacketBuilder.tcpFrame(src: c, dst: s, sport: port, dport: 5269, seq: cseq, ack: 0, flags: 0x02, payload: []))
        add(PacketBuilder.tcpFrame(src: s, dst: c, sport: 5269, dport: port, seq: sseq, ack: cseq &+ 1, flags: 0x12, payload: []))
        cseq &+= 1
        sseq &+= 1
        add(PacketBuilder.tcpFrame(src: s, dst: c, sport: 5269, dport: port, seq: sseq, ack: cseq, flags: 0x18,
                                   payload: HostileCapture.serverHeader[...]))
        sseq &+= UInt32(HostileCapture.serverHeader.count)
        var i = 0
        while i < clientData.count {
            let j = min(clientData.count, i + mss)
            add(PacketBuilder.tcpFrame(src: c, dst: s, sport: port, dport: 5269, seq: cseq, ack: sseq, flags: 0x18,
                                       payload: clientData[i..<j]))
            cseq &+= UInt32(j - i)
            i = j
        }
    }

    func write(suffix: String = ".pcap") -> String { temporaryFile(bytes, suffix: suffix) }
}

/// Classic pcap → pcapng with blocks no reader knows (a reserved type, a local-use type and a
/// Custom Block) before, between and after the packets: readers must skip them by length.
func pcapng(fromPcap pcap: [UInt8]) -> [UInt8] {
    func u32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)] }
    func block(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
        var b = body
        while b.count % 4 != 0 { b.append(0) }
        let len = UInt32(12 + b.count)
        return u32(type) + u32(len) + b + u32(len)
    }
    func rd32(_ o: Int) -> UInt32 { UInt32(pcap[o]) | UInt32(pcap[o + 1]) << 8 | UInt32(pcap[o + 2]) << 16 | UInt32(pcap[o + 3]) << 24 }
    var out = block(0x0A0D_0D0A, u32(0x1A2B_3C4D) + [1, 0, 0, 0] + [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
    out += block(0x0000_0BAD, u32(32473) + Array("a custom block nobody understands".utf8))   // Custom Block, copiable
    out += block(0x0000_0001, [UInt8(rd32(20) & 0xff), UInt8(rd32(20) >> 8 & 0xff), 0, 0] + u32(262_144))  // IDB
    out += block(0x8000_1234, Array("local-use block type".utf8))
    var o = 24
    var n = 0
    while o + 16 <= pcap.count {
        let sec = UInt64(rd32(o)), usec = UInt64(rd32(o + 4)), cap = Int(rd32(o + 8)), len = rd32(o + 12)
        guard o + 16 + cap <= pcap.count else { break }
        let ts = sec * 1_000_000 + usec
        out += block(0x0000_0006, u32(0) + u32(UInt32(ts >> 32)) + u32(UInt32(ts & 0xffff_ffff)) + u32(UInt32(cap)) + u32(len)
                     + Array(pcap[(o + 16)..<(o + 16 + cap)]))
        n += 1
        if n % 3 == 0 { out += block(0x0000_0BAE + UInt32(n % 2), u32(32473) + [1, 2, 3]) }  // unknown between packets
        o += 16 + cap
    }
    out += block(0x7123_4567, Array("trailing unknown block".utf8))
    return out
}

/// Offsets of the record headers of a classic pcap (little-endian, as PcapWriter writes it).
func pcapRecordOffsets(_ pcap: [UInt8]) -> [Int] {
    var out: [Int] = []
    var o = 24
    while o + 16 <= pcap.count {
        out.append(o)
        let caplen = Int(pcap[o + 8]) | Int(pcap[o + 9]) << 8 | Int(pcap[o + 10]) << 16 | Int(pcap[o + 11]) << 24
        o += 16 + caplen
    }
    return out
}
