/// Traffic that is not s2s: HTTPS, HTTP and IMAPS over TCP, DNS and QUIC over UDP, ARP. About
/// `noiseShare` of the capture's bytes; none of it touches port 5269.
final class Noise: Actor {
    private var rng: Rng
    private var flows: [NoiseFlow] = []
    private let clients: [Host]
    private let servers: [Host]
    private let clients6: [Host]
    private let servers6: [Host]
    private var scratch: [UInt8] = []
    private(set) var bytes: Int64 = 0
    private(set) var packets = 0

    init(rng: Rng) {
        self.rng = rng
        var r = rng
        clients = (0..<40).map { _ in Host("192.168.\(r.range(0, 9)).\(r.range(2, 250))") }
        servers = (0..<25).map { _ in Host("\(r.chance(0.5) ? "203.0.113" : "198.51.100").\(r.range(1, 254))") }
        clients6 = (0..<10).map { _ in Host("fd00:\(String(r.range(1, 9), radix: 16))::\(String(r.range(2, 4000), radix: 16))") }
        servers6 = (0..<8).map { _ in Host("2001:db8:ffff::\(String(r.range(1, 4000), radix: 16))") }
        self.rng = r
    }

    func step(_ g: Generator, now: Double) -> Double? {
        if g.winding { return nil }
        while flows.count < 10 { flows.append(newFlow()) }
        let i = rng.below(flows.count)
        let before = g.out.bytesWritten
        let finished = flows[i].next(g, now: now, scratch: &scratch, rng: &rng)
        bytes += g.out.bytesWritten - before
        packets += 1
        if finished {
            flows.swapAt(i, flows.count - 1)
            flows.removeLast()
        }
        let share = Double(bytes) / Double(max(g.out.bytesWritten, 1))
        return now + (share < g.noiseShare ? 0.00002 + rng.exp(0.0001) : 0.01 + rng.exp(0.03))
    }

    private func newFlow() -> NoiseFlow {
        let r = rng.below(100)
        // UDP over IPv6 needs a checksum, which the generator does not compute: UDP noise is IPv4.
        let v6 = r < 62 && rng.chance(0.2)
        let c = v6 ? rng.pick(clients6) : rng.pick(clients)
        let s = v6 ? rng.pick(servers6) : rng.pick(servers)
        let kind: NoiseFlow.Kind
        if r < 45 { kind = .tcp(port: 443, text: false) }
        else if r < 55 { kind = .tcp(port: 80, text: true) }
        else if r < 62 { kind = .tcp(port: 993, text: false) }
        else if r < 82 { kind = .dns }
        else if r < 95 { kind = .quic }
        else { kind = .arp }
        return NoiseFlow(kind: kind, client: c, server: s, cport: UInt16(rng.range(32768, 60999)), rng: &rng)
    }
}

final class NoiseFlow {
    enum Kind { case tcp(port: UInt16, text: Bool), dns, quic, arp }
    let kind: Kind
    let client: Host, server: Host
    let cport: UInt16
    var cseq: UInt32, sseq: UInt32
    var ipID: UInt16
    var state = 0
    var rounds: Int
    var segsLeft = 0
    var sinceAck = 0

    init(kind: Kind, client: Host, server: Host, cport: UInt16, rng: inout Rng) {
        self.kind = kind
        self.client = client
        self.server = server
        self.cport = cport
        cseq = UInt32(truncatingIfNeeded: rng.next())
        sseq = UInt32(truncatingIfNeeded: rng.next())
        ipID = UInt16(truncatingIfNeeded: rng.next())
        rounds = rng.range(1, 6)
    }

    private func tcp(_ g: Generator, _ now: Double, port: UInt16, fromClient: Bool, flags: UInt8, _ payload: UnsafeRawBufferPointer) {
        ipID &+= 1
        if fromClient {
            g.out.tcp(time: now, src: client, dst: server, sport: cport, dport: port, seq: cseq, ack: sseq, flags: flags,
                      window: 501, ipID: ipID, payload: payload)
            cseq &+= UInt32(payload.count) &+ (flags & 0x03 != 0 ? 1 : 0)
        } else {
            g.out.tcp(time: now, src: server, dst: client, sport: port, dport: cport, seq: sseq, ack: cseq, flags: flags,
                      window: 65160, ipID: ipID, payload: payload)
            sseq &+= UInt32(payload.count) &+ (flags & 0x03 != 0 ? 1 : 0)
        }
    }

    /// Emits one packet; true when the flow is over.
    func next(_ g: Generator, now: Double, scratch: inout [UInt8], rng: inout Rng) -> Bool {
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        switch kind {
        case .arp:
            if client.v6 { return true }
            g.out.arp(time: now, src: client, target: [192, 168, UInt8(rng.range(0, 9)), UInt8(rng.range(1, 254))])
            return true
        case .dns:
            // A well-formed query for an A record, then its answer.
            scratch.removeAll(keepingCapacity: true)
            scratch.append(UInt8(ipID & 0xff)); scratch.append(UInt8(cport & 0xff))
            scratch.put(state == 0 ? "\u{01}\u{00}\u{00}\u{01}\u{00}\u{00}\u{00}\u{00}\u{00}\u{00}" : "\u{01}\u{00}\u{00}\u{01}\u{00}\u{01}\u{00}\u{00}\u{00}\u{00}")
            if state != 0 { scratch[2] = 0x81; scratch[3] = 0x80 }
            scratch.append(3); scratch.put("www"); scratch.append(7); scratch.put("example"); scratch.append(3); scratch.put("com")
            scratch.put("\u{00}\u{00}\u{01}\u{00}\u{01}")
            if state != 0 {
                scratch.append(0xc0); scratch.append(0x0c); scratch.put("\u{00}\u{01}\u{00}\u{01}\u{00}\u{00}\u{0e}\u{10}\u{00}\u{04}")
                scratch.append(93); scratch.append(184); scratch.append(216); scratch.append(34)
            }
            scratch.withUnsafeBytes { p in
                ipID &+= 1
                if state == 0 {
                    g.out.udp(time: now, src: client, dst: server, sport: cport, dport: 53, ipID: ipID, payload: p)
                } else {
                    g.out.udp(time: now, src: server, dst: client, sport: 53, dport: cport, ipID: ipID, payload: p)
                }
            }
            state += 1
            return state >= 2
        case .quic:
            scratch.removeAll(keepingCapacity: true)
            g.corpus.appendRandom(&scratch, length: rng.range(60, 1350), rng: &rng)
            let up = state == 0 || rng.chance(0.25)
            scratch.withUnsafeBytes { p in
                ipID &+= 1
                if up {
                    g.out.udp(time: now, src: client, dst: server, sport: cport, dport: 443, ipID: ipID, payload: p)
                } else {
                    g.out.udp(time: now, src: server, dst: client, sport: 443, dport: cport, ipID: ipID, payload: p)
                }
            }
            state += 1
            return state > 4 + rounds * 6
        case .tcp(let port, let text):
            switch state {
            case 0: tcp(g, now, port: port, fromClient: true, flags: 0x02, empty); state = 1
            case 1: tcp(g, now, port: port, fromClient: false, flags: 0x12, empty); state = 2
            case 2: tcp(g, now, port: port, fromClient: true, flags: 0x10, empty); state = 3
            case 3:
                // A request.
                scratch.removeAll(keepingCapacity: true)
                if text {
                    scratch.put("GET /static/"); scratch.putHex(rng.next(), digits: 10)
                    scratch.put(".js HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0\r\nAccept: */*\r\nConnection: keep-alive\r\n\r\n")
                } else {
                    g.corpus.appendRandom(&scratch, length: rng.range(80, 700), rng: &rng)
                }
                scratch.withUnsafeBytes { tcp(g, now, port: port, fromClient: true, flags: 0x18, $0) }
                segsLeft = rng.range(1, 30)
                sinceAck = 0
                state = 4
            case 4:
                // Response segments, with an ACK from the client every second one.
                if sinceAck == 2 {
                    tcp(g, now, port: port, fromClient: true, flags: 0x10, empty)
                    sinceAck = 0
                    return false
                }
                scratch.removeAll(keepingCapacity: true)
                if text && segsLeft > 0 && sinceAck == 0 && rng.chance(0.3) {
                    scratch.put("HTTP/1.1 200 OK\r\nContent-Type: application/javascript\r\nCache-Control: max-age=3600\r\n\r\n")
                }
                g.corpus.appendRandom(&scratch, length: (segsLeft == 1 ? rng.range(100, 1448) : 1448) - scratch.count, rng: &rng)
                scratch.withUnsafeBytes { tcp(g, now, port: port, fromClient: false, flags: segsLeft == 1 ? 0x18 : 0x10, $0) }
                sinceAck += 1
                segsLeft -= 1
                if segsLeft == 0 {
                    rounds -= 1
                    state = rounds > 0 ? 3 : 5
                }
            case 5: tcp(g, now, port: port, fromClient: true, flags: 0x11, empty); state = 6
            case 6: tcp(g, now, port: port, fromClient: false, flags: 0x11, empty); state = 7
            default:
                tcp(g, now, port: port, fromClient: true, flags: 0x10, empty)
                return true
            }
            return false
        }
    }
}
