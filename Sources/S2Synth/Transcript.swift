import S2Model

/// A two-direction XMPP conversation written as text, turned into real TCP/IP frames.
///
/// One line per step:
/// - `C> xml` — connection 1's initiator sends `xml`; `S> xml` — its acceptor sends.
/// - `2C> xml`, `2S> xml` — the same on connection 2 (and so on).
/// - `@2 10.0.0.2 -> 10.0.0.1` — connection 2 opens from the first address to the second.
///   Connection n defaults to `10.0.0.1:4000n -> 10.0.0.2:5269`. With a trailing `midstream`
///   the connection is already open when the capture starts: no handshake is captured.
/// - `C~ xml` — sent but not captured (a packet the sensor lost, or sent before the capture
///   began): sequence numbers move on, no frame is written.
/// - `↓` right after `C> `/`S> ` (or before `close`/`rst`) marks the step whose first frame a
///   rule's finding must point at (checked by the rule example tests, as SwiftLint's ↓ is).
/// - `+5` — capture time moves 5 seconds on.
/// - `close`, `2close` — FIN exchange; `rst`, `2rst` — the initiator resets; `fin C`, `fin S` — one
///   side's FIN alone (a half close).
/// - `$HDR` expands to an s2s stream header start tag without its closing `>`:
///   `<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'`.
/// Each step is one TCP segment (split at the MSS when longer), 1 ms after the previous one.
public struct Transcript {
    public static let header = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'"

    public struct Frame {
        public var bytes: [UInt8]
        public var time: Timestamp
    }

    final class Conn {
        let src: [UInt8], dst: [UInt8]
        let sport: UInt16, dport: UInt16
        var cseq: UInt32, sseq: UInt32
        /// The handshake was emitted (or, mid-stream, is not to be).
        var opened = false
        var closed = false
        init(src: String, dst: String, sport: UInt16, dport: UInt16, isn: UInt32) {
            self.src = PacketBuilder.addressBytes(src)
            self.dst = PacketBuilder.addressBytes(dst)
            self.sport = sport
            self.dport = dport
            cseq = isn
            sseq = isn &+ 0x1000_0000
        }
    }

    public private(set) var frames: [Frame] = []
    /// 1-based frame numbers of the steps marked with `↓`, in order.
    public private(set) var markedFrames: [Int] = []
    public var mss = 1400
    private var time = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)
    private var conns: [Int: Conn] = [:]

    public init() {}

    /// Parses and plays `text`; throws a description of the first bad line.
    public init(_ text: String) throws {
        self.init()
        try play(text)
    }

    public mutating func play(_ text: String) throws {
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = raw.trimmingLeadingSpaces()
            if line.isEmpty || line.hasPrefix("#") { continue }
            try step(line)
        }
    }

    private mutating func step(_ line: String) throws {
        if line.hasPrefix("+"), let s = Double(line.dropFirst()) {
            time = time.adding(seconds: s)
            return
        }
        if line.hasPrefix("@") {
            let parts = line.dropFirst().split(separator: " ")
            guard parts.count == 4 || (parts.count == 5 && parts[4] == "midstream"), let n = Int(parts[0]), (1...999).contains(n), parts[2] == "->" else {
                throw TranscriptError("bad connection line: \(line)")
            }
            let c = Conn(src: String(parts[1]), dst: String(parts[3]), sport: UInt16(40000 + n), dport: 5269,
                         isn: UInt32(1000 * n))
            if parts.count == 5 {
                // Already open: the sequence numbers are somewhere in the stream.
                c.opened = true
                c.cseq = c.cseq &+ 100_000
                c.sseq = c.sseq &+ 200_000
            }
            conns[n] = c
            return
        }
        var rest = Substring(line)
        var n = 1
        if let f = rest.first, f.isNumber {
            let digits = rest.prefix { $0.isNumber }
            guard let k = Int(digits), (1...999).contains(k) else { throw TranscriptError("bad connection number in: \(line)") }
            n = k
            rest = rest.dropFirst(digits.count)
        }
        let c = conn(n)
        var marked = false
        if rest.hasPrefix("↓") { marked = true; rest = rest.dropFirst() }
        if rest == "close" { fin(c, marked: marked); return }
        if rest == "fin C" || rest == "fin S" { halfClose(c, fromClient: rest == "fin C", marked: marked); return }
        if rest == "rst" { reset(c, marked: marked); return }
        let lost = rest.hasPrefix("C~") || rest.hasPrefix("S~")
        guard rest.hasPrefix("C>") || rest.hasPrefix("S>") || lost else { throw TranscriptError("bad step: \(line)") }
        let fromClient = rest.hasPrefix("C")
        var text = String(rest.dropFirst(2))
        if text.hasPrefix(" ") { text.removeFirst() }
        if text.hasPrefix("↓") { marked = true; text.removeFirst() }
        text = text.replacingAll("$HDR", with: Transcript.header)
        send(c, fromClient: fromClient, Transcript.bytes(text), captured: !lost, marked: marked)
    }

    private mutating func conn(_ n: Int) -> Conn {
        if let c = conns[n] { return c }
        let c = Conn(src: "10.0.0.1", dst: "10.0.0.2", sport: UInt16(40000 + n), dport: 5269, isn: UInt32(1000 * n))
        conns[n] = c
        return c
    }

    private mutating func emit(_ c: Conn, fromClient: Bool, flags: UInt8, payload: ArraySlice<UInt8> = [], captured: Bool = true) {
        guard captured else { return }
        let f = fromClient
            ? PacketBuilder.tcpFrame(src: c.src, dst: c.dst, sport: c.sport, dport: c.dport, seq: c.cseq, ack: c.sseq, flags: flags, payload: payload)
            : PacketBuilder.tcpFrame(src: c.dst, dst: c.src, sport: c.dport, dport: c.sport, seq: c.sseq, ack: c.cseq, flags: flags, payload: payload)
        frames.append(Frame(bytes: f, time: time))
        time = time.adding(seconds: 0.001)
    }

    private mutating func open(_ c: Conn) {
        guard !c.opened else { return }
        c.opened = true
        let ci = c.cseq, si = c.sseq
        frames.append(Frame(bytes: PacketBuilder.tcpFrame(src: c.src, dst: c.dst, sport: c.sport, dport: c.dport, seq: ci, ack: 0, flags: 0x02, payload: []), time: time))
        frames.append(Frame(bytes: PacketBuilder.tcpFrame(src: c.dst, dst: c.src, sport: c.dport, dport: c.sport, seq: si, ack: ci &+ 1, flags: 0x12, payload: []), time: time.adding(seconds: 0.0001)))
        c.cseq = ci &+ 1
        c.sseq = si &+ 1
        frames.append(Frame(bytes: PacketBuilder.tcpFrame(src: c.src, dst: c.dst, sport: c.sport, dport: c.dport, seq: c.cseq, ack: c.sseq, flags: 0x10, payload: []), time: time.adding(seconds: 0.0002)))
        time = time.adding(seconds: 0.001)
    }

    private mutating func send(_ c: Conn, fromClient: Bool, _ data: [UInt8], captured: Bool = true, marked: Bool = false) {
        open(c)
        if marked { markedFrames.append(frames.count + 1) }
        var i = 0
        while i < data.count {
            let j = min(data.count, i + mss)
            emit(c, fromClient: fromClient, flags: 0x18, payload: data[i..<j], captured: captured)
            if fromClient { c.cseq = c.cseq &+ UInt32(j - i) } else { c.sseq = c.sseq &+ UInt32(j - i) }
            i = j
        }
    }

    private mutating func fin(_ c: Conn, marked: Bool = false) {
        open(c)
        if marked { markedFrames.append(frames.count + 1) }
        emit(c, fromClient: true, flags: 0x11)
        c.cseq = c.cseq &+ 1
        emit(c, fromClient: false, flags: 0x11)
        c.sseq = c.sseq &+ 1
        emit(c, fromClient: true, flags: 0x10)
    }

    private mutating func halfClose(_ c: Conn, fromClient: Bool, marked: Bool) {
        open(c)
        if marked { markedFrames.append(frames.count + 1) }
        emit(c, fromClient: fromClient, flags: 0x11)
        if fromClient { c.cseq = c.cseq &+ 1 } else { c.sseq = c.sseq &+ 1 }
    }

    private mutating func reset(_ c: Conn, marked: Bool = false) {
        open(c)
        if marked { markedFrames.append(frames.count + 1) }
        emit(c, fromClient: true, flags: 0x14)
    }

    /// The UTF-8 bytes of `text`, with `\\xNN` escapes turned into raw bytes (for invalid UTF-8).
    static func bytes(_ text: String) -> [UInt8] {
        let u = Array(text.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < u.count {
            if u[i] == UInt8(ascii: "\\"), i + 3 < u.count, u[i + 1] == UInt8(ascii: "x"),
               let v = UInt8(String(decoding: u[(i + 2)...(i + 3)], as: UTF8.self), radix: 16) {
                out.append(v)
                i += 4
            } else {
                out.append(u[i])
                i += 1
            }
        }
        return out
    }

    /// The frames as a pcap file.
    public var pcap: [UInt8] {
        var w = PcapWriter()
        for f in frames { w.add(f.bytes, time: f.time) }
        return w.bytes
    }
}

public struct TranscriptError: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
}

extension StringProtocol {
    func trimmingLeadingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s.removeLast() }
        return String(s)
    }
}

extension String {
    func replacingAll(_ a: String, with b: String) -> String {
        guard contains(a) else { return self }
        return components(a).joined(separator: b)
    }

    private func components(_ sep: String) -> [String] {
        var out: [String] = []
        var cur = ""
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(sep) {
                out.append(cur)
                cur = ""
                i = index(i, offsetBy: sep.count)
            } else {
                cur.append(self[i])
                i = index(after: i)
            }
        }
        out.append(cur)
        return out
    }
}
