// The floor of S2Scope's own layers, stage by stage, to set beside the C yardstick in one run:
// how far from C the reading, decoding and reassembly layers already are before any XMPP work,
// and what the cheapest Swift use of expat costs on top of them. No rules, no model, no report:
// what `analyze` adds to the last stage is S2Scope's analysis.
//   floor-bench STAGE FILE
//   read        PcapFileReader only (libpcap)
//   decode      + FrameDecoder (link, IP, TCP)
//   reassemble  + TCPReassembler on port 5269, a sink that drops the bytes
//   expat       + one expat parser per direction set up as the C yardstick does (namespaces on,
//                 start/end handlers that count depth-2 elements and stop at STARTTLS)
//   events      + expat set up as S2Scope does (namespace triplets, declaration, comment, PI,
//                 XML-declaration and doctype handlers, reparse deferral off) and the least an
//                 analyzer must keep: every element name interned to a small integer, each element
//                 an event value in a reused buffer, the from/to/id/type attributes of top-level
//                 elements as byte lengths; no String, no allocation per element
// Prints the counts the C yardstick prints, so both can be checked to have done the same work.
import CExpat
import S2Capture
import S2Model
import S2Reassembly
import S2Wire

#if canImport(Glibc)
import Glibc
#endif

enum Stage: String, CaseIterable { case read, decode, reassemble, expat, events }

/// A name seen before is found by its bytes; the XMPP vocabulary is a few dozen names, so the
/// table stays tiny and a lookup is a hash and one compare.
struct NameTable {
    private var slots = [Int32](repeating: -1, count: 1024)
    private var names: [[UInt8]] = []
    private var hashes: [UInt64] = []

    mutating func id(_ p: UnsafePointer<CChar>) -> Int32 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        var n = 0
        while p[n] != 0 {
            h = (h ^ UInt64(UInt8(bitPattern: p[n]))) &* 0x100_0000_01b3
            n += 1
        }
        var i = Int(truncatingIfNeeded: h) & (slots.count - 1)
        while slots[i] >= 0 {
            let k = Int(slots[i])
            if hashes[k] == h && names[k].count == n && names[k].withUnsafeBytes({ memcmp($0.baseAddress!, p, n) == 0 }) {
                return Int32(k)
            }
            i = (i + 1) & (slots.count - 1)
        }
        // Grown only by names never seen before; a hostile peer's fresh names would need a bound,
        // which the floor does not model (the capture has none).
        precondition(names.count < slots.count / 2, "name table full")
        names.append(Array(UnsafeRawBufferPointer(start: p, count: n)))
        hashes.append(h)
        slots[i] = Int32(names.count - 1)
        return Int32(names.count - 1)
    }
}

struct ElementEvent {
    var name: Int32
    var depth: Int32
    var start: Int64
    var from: Int32
    var to: Int32
    var id: Int32
    var type: Int32
}

final class Counters {
    var packets = 0, tcp = 0, s2s = 0, bytesFed = 0, elements = 0, stanzas = 0, dialback = 0, xmlErrors = 0, tlsStops = 0
    var events: [ElementEvent] = []
    var names = NameTable()
}

final class DirectionParser {
    let parser: XML_Parser
    unowned let counters: Counters
    let s2scopeSetup: Bool
    var depth = 0
    var stopped = false
    init(counters: Counters, s2scopeSetup: Bool) {
        self.counters = counters
        self.s2scopeSetup = s2scopeSetup
        parser = s2scopeSetup ? XML_ParserCreateNS("UTF-8", 0x01)! : XML_ParserCreateNS(nil, 0x7c)!
        XML_SetUserData(parser, Unmanaged.passUnretained(self).toOpaque())
        if s2scopeSetup {
            XML_SetReturnNSTriplet(parser, 1)
            XML_SetElementHandler(parser, onEventsStart, onEventsEnd)
            XML_SetNamespaceDeclHandler(parser, { _, _, _ in }, nil)
            XML_SetCommentHandler(parser, { _, _ in })
            XML_SetProcessingInstructionHandler(parser, { _, _, _ in })
            XML_SetXmlDeclHandler(parser, { _, _, _, _ in })
            XML_SetStartDoctypeDeclHandler(parser, { _, _, _, _, _ in })
            _ = s2_disable_reparse_deferral(parser)
        } else {
            XML_SetElementHandler(parser, onCountStart, onCountEnd)
        }
    }
    deinit { XML_ParserFree(parser) }

    func feed(_ bytes: UnsafeRawBufferPointer) {
        guard !stopped, let base = bytes.baseAddress else { return }
        counters.bytesFed += bytes.count
        if XML_Parse(parser, base.assumingMemoryBound(to: CChar.self), Int32(bytes.count), 0) != XML_STATUS_OK && !stopped {
            stopped = true
            counters.xmlErrors += 1
        }
    }

    @inline(__always)
    func stopForTLS(_ isTLS: Bool) {
        if isTLS {
            stopped = true
            counters.tlsStops += 1
            XML_StopParser(parser, XML_FALSE)
        }
    }
}

private func direction(_ ud: UnsafeMutableRawPointer?) -> DirectionParser {
    Unmanaged<DirectionParser>.fromOpaque(ud!).takeUnretainedValue()
}

private func hasPrefix(_ s: UnsafePointer<CChar>, _ prefix: StaticString) -> Bool {
    prefix.withUTF8Buffer { p in strncmp(s, UnsafeRawPointer(p.baseAddress!).assumingMemoryBound(to: CChar.self), p.count) == 0 }
}

nonisolated(unsafe) private let onCountStart: XML_StartElementHandler = { ud, name, _ in
    let d = direction(ud)
    d.counters.elements += 1
    d.depth += 1
    guard d.depth == 2, let name else { return }
    d.counters.stanzas += 1
    if hasPrefix(name, "jabber:server:dialback|") {
        d.counters.dialback += 1
    } else {
        d.stopForTLS(strcmp(name, "urn:ietf:params:xml:ns:xmpp-tls|starttls") == 0
                     || strcmp(name, "urn:ietf:params:xml:ns:xmpp-tls|proceed") == 0)
    }
}
nonisolated(unsafe) private let onCountEnd: XML_EndElementHandler = { ud, _ in direction(ud).depth -= 1 }

nonisolated(unsafe) private let onEventsStart: XML_StartElementHandler = { ud, name, atts in
    let d = direction(ud)
    let c = d.counters
    c.elements += 1
    d.depth += 1
    guard let name else { return }
    var e = ElementEvent(name: c.names.id(name), depth: Int32(d.depth), start: Int64(XML_GetCurrentByteIndex(d.parser)),
                         from: -1, to: -1, id: -1, type: -1)
    if d.depth == 2 {
        c.stanzas += 1
        if hasPrefix(name, "jabber:server:dialback\u{1}") { c.dialback += 1 }
        d.stopForTLS(hasPrefix(name, "urn:ietf:params:xml:ns:xmpp-tls\u{1}starttls") || hasPrefix(name, "urn:ietf:params:xml:ns:xmpp-tls\u{1}proceed"))
        if let atts {
            var i = 0
            while let n = atts[i], let v = atts[i + 1] {
                let len = Int32(strlen(v))
                switch (n[0], n[1]) {
                case (0x66, 0x72) where strcmp(n, "from") == 0: e.from = len
                case (0x74, 0x6f) where strcmp(n, "to") == 0: e.to = len
                case (0x69, 0x64) where strcmp(n, "id") == 0: e.id = len
                case (0x74, 0x79) where strcmp(n, "type") == 0: e.type = len
                default: break
                }
                i += 2
            }
        }
    }
    c.events.append(e)
}
nonisolated(unsafe) private let onEventsEnd: XML_EndElementHandler = { ud, _ in
    let d = direction(ud)
    d.depth -= 1
    // A top-level element ended: an analyzer would judge its events here; the buffer is reused.
    if d.depth == 1 { d.counters.events.removeAll(keepingCapacity: true) }
}

final class Sink: ReassemblySink {
    let counters: Counters
    let stage: Stage
    var parsers: [ConnectionID: (DirectionParser, DirectionParser)] = [:]
    init(counters: Counters, stage: Stage) {
        self.counters = counters
        self.stage = stage
    }
    func connectionOpened(_ connection: TCPConnection) {
        guard stage == .expat || stage == .events else { return }
        let s = stage == .events
        parsers[connection.id] = (DirectionParser(counters: counters, s2scopeSetup: s), DirectionParser(counters: counters, s2scopeSetup: s))
    }
    func streamData(_ connection: TCPConnection, _ direction: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef) {
        guard let p = parsers[connection.id] else { counters.bytesFed += bytes.count; return }
        (direction == .clientToServer ? p.0 : p.1).feed(bytes)
    }
    func streamGap(_ connection: TCPConnection, _ direction: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
        guard let p = parsers[connection.id] else { return }
        (direction == .clientToServer ? p.0 : p.1).stopped = true
    }
    func connectionClosed(_ connection: TCPConnection) { parsers[connection.id] = nil }
    func anomaly(_ anomaly: Anomaly) {}
}

let args = CommandLine.arguments
guard args.count == 3, let stage = Stage(rawValue: args[1]) else {
    printError("usage: floor-bench {\(Stage.allCases.map(\.rawValue).joined(separator: "|"))} FILE\n")
    exit(2)
}
/// Standard error, written whole (no Foundation here).
func printError(_ s: String) {
    var s = s
    s.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

let counters = Counters()
let reader: PcapFileReader
do { reader = try PcapFileReader(path: args[2], inputIndex: 0) } catch {
    printError("floor-bench: \(error)\n")
    exit(1)
}
let decoder = FrameDecoder()
let sink = Sink(counters: counters, stage: stage)
let reassembler = TCPReassembler(sink: sink, isServerPort: { $0 == 5269 })
_ = reader.read { packet in
    counters.packets += 1
    guard stage != .read else { return true }
    guard case .success(let seg) = decoder.decode(packet.bytes, linkType: packet.linkType, frame: packet.frame) else { return true }
    counters.tcp += 1
    guard seg.source.port == 5269 || seg.destination.port == 5269 else { return true }
    counters.s2s += 1
    if stage != .decode { reassembler.process(seg) }
    return true
}
reassembler.finish()
print("stage=\(stage.rawValue) packets=\(counters.packets) s2s_packets=\(counters.s2s) bytes_parsed=\(counters.bytesFed) "
      + "elements=\(counters.elements) stanzas=\(counters.stanzas) dialback=\(counters.dialback) "
      + "xml_errors=\(counters.xmlErrors) starttls_stops=\(counters.tlsStops)")
