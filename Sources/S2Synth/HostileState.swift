import S2Model

/// Captures that push the analyzer's *state* (not its wire decoders) toward its bounds: what a
/// peer can make S2Scope remember — pending IQs, piggybacked dialback requests, connections,
/// stream ids, pending verifies, demanded reactions. Each is well-formed traffic; only the
/// amount is hostile. Deterministic: the same kind and count give the same bytes.
///
/// Every capture starts with connection 1, 10.0.0.1:40001 → 10.0.0.2:5269, on which a.example
/// is validated at b.example through a db:verify on connection 2 (10.0.0.2:40002 → 10.0.0.1:5269),
/// so that stanzas and piggybacked requests travel on a validated stream.
public enum HostileState {
    public enum Kind: String, CaseIterable, Sendable {
        /// `n` IQ get requests on one stream, most with one of four ids (reused while pending),
        /// every 3rd answered, every 100th with a unique id and never answered; 10 ms apart.
        case duplicateIQIDs = "iq-duplicate-ids"
        /// `n` piggybacked db:result requests on the validated stream, each from a new sender
        /// domain, every other one to a new target domain; every 2nd answered `valid`.
        case piggybackedResults = "piggybacked-results"
        /// `n` connections that each send only an initial stream header and stay open.
        case headerConnections = "header-connections"
        /// `n` connections that stay open, each as large as a peer can make what S2Scope keeps of
        /// it: headers with 250-byte domains and stream id, then four stanzas each way whose
        /// addresses carry other 250-byte domains.
        case fatConnections = "fat-connections"
        /// `n` connections to one server that issues the same stream id on each, every one
        /// closed after a db:result; every 10th followed by a db:verify naming that id.
        case streamIDReuse = "stream-id-reuse"
        /// `n` db:result requests for one domain pair on one stream, each with its own key, each
        /// followed by a db:verify on connection 2 with a key that matches none of them.
        case exchangesOnePair = "exchanges-one-pair"
        /// `n` db:verify requests with unknown ids on connection 2, never answered, each
        /// followed by a reply whose id matches no request.
        case unknownVerifies = "unknown-verifies"
        /// `n` stream restarts on one connection: headers both ways (a new stream id each time),
        /// a stream error and the close of both streams, then the next header.
        case streamErrors = "stream-errors"
        /// `n` stanzas with a spoofed `from` on the validated stream, each demanding a stream
        /// error the receiving server never sends; 1 ms apart.
        case spoofedStanzas = "spoofed-stanzas"
    }

    static let key = "574904085be36e0b24eb9037400643f4f45cf4e3215d998cd4e0101a73e4d282"
    static let header = "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' version='1.0'"

    /// The capture (classic pcap, Ethernet) of `n` hostile steps of `kind`.
    public static func capture(_ kind: Kind, n: Int) -> [UInt8] {
        var b = Builder()
        let one = b.flow(client: "10.0.0.1", port: 40001, server: "10.0.0.2")
        let two = b.flow(client: "10.0.0.2", port: 40002, server: "10.0.0.1")
        b.validate(one, two)
        switch kind {
        case .duplicateIQIDs:
            for i in 0..<n {
                let id = i % 100 == 99 ? "u\(i)" : "q\(i % 4)"
                b.send(one, client: "<iq from='a.example' to='b.example' id='\(id)' type='get'><ping xmlns='urn:xmpp:ping'/></iq>", step: 0.010)
                if i % 3 == 0 && i % 100 != 99 {
                    b.send(one, client: false, "<iq from='b.example' to='a.example' id='\(id)' type='result'/>", step: 0.0001)
                }
            }
        case .piggybackedResults:
            for i in 0..<n {
                let target = i % 2 == 0 ? "b.example" : "t\(i).b.example"
                b.send(one, client: "<db:result from='s\(i).a.example' to='\(target)'>\(key)</db:result>", step: 0.001)
                if i % 2 == 1 {
                    b.send(one, client: false, "<db:result from='\(target)' to='s\(i).a.example' type='valid'/>", step: 0.0001)
                }
            }
        case .headerConnections:
            for i in 0..<n {
                let f = b.flow(client: Builder.address(i), port: UInt16(20000 + i % 40000), server: "10.0.0.2")
                b.open(f, step: 0.00005)
                b.send(f, client: "\(header) to='b.example' from='h\(i).example'>", step: 0.00005)
            }
        case .fatConnections:
            // A DNS name's longest form: 63-byte labels, 250 bytes in all.
            func long(_ tag: String) -> String {
                let label = String(repeating: "x", count: 63 - tag.count - 1)
                return "\(tag)-\(label).\(String(repeating: "y", count: 62)).\(String(repeating: "z", count: 62)).\(String(repeating: "w", count: 59))"
            }
            for i in 0..<n {
                let f = b.flow(client: Builder.address(i), port: UInt16(20000 + i % 40000), server: "10.0.0.2")
                let (from, to) = (long("o\(i)"), long("r\(i)"))
                b.open(f, step: 0.00005)
                b.send(f, client: "\(header) to='\(to)' from='\(from)'>", step: 0.00005)
                b.send(f, client: false, "\(header) from='\(to)' to='\(from)' id='\(long("i\(i)"))'>", step: 0.00005)
                for k in 0..<4 {
                    b.send(f, client: "<message from='u@\(long("a\(k)-\(i)"))' to='v@\(long("b\(k)-\(i)"))'/>", step: 0.00005)
                    b.send(f, client: false, "<message from='v@\(long("c\(k)-\(i)"))' to='u@\(long("d\(k)-\(i)"))'/>", step: 0.00005)
                }
            }
        case .streamIDReuse:
            for i in 0..<n {
                let f = b.flow(client: Builder.address(i), port: UInt16(20000 + i % 40000), server: "10.0.0.2")
                b.open(f, step: 0.0001)
                b.send(f, client: "\(header) to='b.example' from='r\(i).example'>", step: 0.0001)
                b.send(f, client: false, "\(header) from='b.example' to='r\(i).example' id='reused'>", step: 0.0001)
                b.send(f, client: "<db:result from='r\(i).example' to='b.example'>\(key)</db:result>", step: 0.0001)
                b.send(f, client: "</stream:stream>", step: 0.0001)
                b.send(f, client: false, "</stream:stream>", step: 0.0001)
                b.close(f, step: 0.0001)
                if i % 10 == 9 {
                    b.send(two, client: "<db:verify from='b.example' to='r\(i).example' id='reused'>\(key)</db:verify>", step: 0.0001)
                }
            }
        case .exchangesOnePair:
            for i in 0..<n {
                b.send(one, client: "<db:result from='a.example' to='b.example'>k\(i)</db:result>", step: 0.0005)
                b.send(two, client: "<db:verify from='b.example' to='a.example' id='x\(i)'>nomatch\(i)</db:verify>", step: 0.0005)
            }
        case .unknownVerifies:
            for i in 0..<n {
                b.send(two, client: "<db:verify from='b.example' to='a.example' id='v\(i)'>\(key)</db:verify>", step: 0.0005)
                b.send(two, client: false, "<db:verify from='a.example' to='b.example' id='w\(i)' type='valid'/>", step: 0.0005)
            }
        case .streamErrors:
            let f = b.flow(client: "10.0.0.3", port: 40003, server: "10.0.0.2")
            b.open(f, step: 0.0001)
            for i in 0..<n {
                b.send(f, client: "\(header) to='b.example' from='e.example'>", step: 0.0001)
                b.send(f, client: false, "\(header) from='b.example' to='e.example' id='e\(i)'>", step: 0.0001)
                b.send(f, client: false, "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>", step: 0.0001)
                b.send(f, client: "</stream:stream>", step: 0.0001)
            }
        case .spoofedStanzas:
            for i in 0..<n {
                b.send(one, client: "<message from='m\(i)@evil.example' to='v@b.example'><body>x</body></message>", step: 0.001)
            }
        }
        return b.writer.bytes
    }

    /// One TCP connection's addresses and sequence numbers.
    public final class Flow {
        let client: [UInt8], server: [UInt8]
        let port: UInt16
        var cseq: UInt32 = 1000, sseq: UInt32 = 0x1000_0000
        var opened = false
        init(client: [UInt8], server: [UInt8], port: UInt16) {
            self.client = client
            self.server = server
            self.port = port
        }
    }

    struct Builder {
        var writer = PcapWriter()
        var time = Timestamp(seconds: 1_700_000_000, nanoseconds: 0)

        /// A distinct client address for connection `i` (10.1.0.0 and up).
        static func address(_ i: Int) -> String { "10.\(1 + (i >> 16) & 0x7f).\((i >> 8) & 0xff).\(i & 0xff)" }

        func flow(client: String, port: UInt16, server: String) -> Flow {
            Flow(client: PacketBuilder.addressBytes(client), server: PacketBuilder.addressBytes(server), port: port)
        }

        mutating func frame(_ f: Flow, client: Bool, flags: UInt8, payload: ArraySlice<UInt8> = [], step: Double) {
            let bytes = client
                ? PacketBuilder.tcpFrame(src: f.client, dst: f.server, sport: f.port, dport: 5269, seq: f.cseq, ack: f.sseq, flags: flags, payload: payload)
                : PacketBuilder.tcpFrame(src: f.server, dst: f.client, sport: 5269, dport: f.port, seq: f.sseq, ack: f.cseq, flags: flags, payload: payload)
            writer.add(bytes, time: time)
            time = time.adding(seconds: step)
        }

        mutating func open(_ f: Flow, step: Double) {
            guard !f.opened else { return }
            f.opened = true
            frame(f, client: true, flags: 0x02, step: step)
            f.cseq &+= 1
            frame(f, client: false, flags: 0x12, step: step)
            f.sseq &+= 1
        }

        mutating func send(_ f: Flow, client: Bool = true, _ text: String, step: Double) {
            open(f, step: step)
            let data = Array(text.utf8)
            var i = 0
            while i < data.count {
                let j = min(data.count, i + 1400)
                frame(f, client: client, flags: 0x18, payload: data[i..<j], step: step)
                if client { f.cseq &+= UInt32(j - i) } else { f.sseq &+= UInt32(j - i) }
                i = j
            }
        }

        mutating func send(_ f: Flow, client text: String, step: Double) { send(f, client: true, text, step: step) }

        mutating func close(_ f: Flow, step: Double) {
            frame(f, client: true, flags: 0x11, step: step)
            f.cseq &+= 1
            frame(f, client: false, flags: 0x11, step: step)
            f.sseq &+= 1
            frame(f, client: true, flags: 0x10, step: step)
        }

        /// a.example validated at b.example on `one`, through a db:verify on `two`.
        mutating func validate(_ one: Flow, _ two: Flow) {
            let s = 0.001
            send(one, client: "\(header) to='b.example' from='a.example'>", step: s)
            send(one, client: false, "\(header) from='b.example' to='a.example' id='s1'>", step: s)
            send(one, client: false, "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>", step: s)
            send(one, client: "<db:result from='a.example' to='b.example'>\(key)</db:result>", step: s)
            send(two, client: "\(header) to='a.example' from='b.example'>", step: s)
            send(two, client: false, "\(header) from='a.example' to='b.example' id='s2'>", step: s)
            send(two, client: "<db:verify from='b.example' to='a.example' id='s1'>\(key)</db:verify>", step: s)
            send(two, client: false, "<db:verify from='a.example' to='b.example' id='s1' type='valid'/>", step: s)
            send(one, client: false, "<db:result from='b.example' to='a.example' type='valid'/>", step: s)
        }
    }
}
