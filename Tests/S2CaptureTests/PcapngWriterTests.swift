import Foundation
@testable import S2Capture
import S2Model
import S2TestSupport
import Testing

/// The pcapng writer (draft-ietf-opsawg-pcapng): block layouts byte by byte, 32-bit padding,
/// total lengths, byte order, comment limits; files read back by libpcap, tshark and capinfos.
struct PcapngWriterTests {
    static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    static func u16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) | UInt16(b[at + 1]) << 8 }

    /// The options of a block from `at` to its trailing length: (code, value) until opt_endofopt.
    static func options(_ b: [UInt8], from at: Int) -> [(UInt16, [UInt8])] {
        var out: [(UInt16, [UInt8])] = []
        var p = at
        while p + 4 <= b.count - 4 {
            let code = u16(b, p), length = Int(u16(b, p + 2))
            if code == 0 {
                #expect(length == 0 && p + 4 == b.count - 4, "opt_endofopt ends the options")
                break
            }
            out.append((code, Array(b[(p + 4)..<(p + 4 + length)])))
            p += 4 + (length + 3) / 4 * 4
            #expect(b[(p - (4 - length % 4) % 4)..<p].allSatisfy { $0 == 0 }, "option padding is zeros")
        }
        return out
    }

    /// Type, equal leading and trailing total length, a multiple of 4.
    static func checkFrame(_ b: [UInt8], type: UInt32) {
        #expect(u32(b, 0) == type)
        #expect(Int(u32(b, 4)) == b.count)
        #expect(u32(b, b.count - 4) == u32(b, 4))
        #expect(b.count % 4 == 0)
    }

    @Test func sectionHeaderIsLittleEndianVersionOneWithTheApplication() {
        let b = PcapngWriter.sectionHeaderBlock(application: "s2scope 0.1.0")
        Self.checkFrame(b, type: 0x0A0D_0D0A)
        #expect(Array(b[8..<12]) == [0x4D, 0x3C, 0x2B, 0x1A], "byte-order magic 0x1A2B3C4D written little-endian")
        #expect(Self.u16(b, 12) == 1 && Self.u16(b, 14) == 0)
        #expect(Array(b[16..<24]) == [UInt8](repeating: 0xFF, count: 8), "section length -1 (not given)")
        let opts = Self.options(b, from: 24)
        #expect(opts.count == 1 && opts[0].0 == 4 && opts[0].1 == Array("s2scope 0.1.0".utf8))
        #expect(b.count == 28 + 4 + 16 + 4, "13 bytes of shb_userappl padded to 16, then opt_endofopt")
    }

    @Test func interfaceDescriptionKeepsLinkTypeSnapLengthAndResolution() {
        for (nano, resolution) in [(true, UInt8(9)), (false, UInt8(6))] {
            let b = PcapngWriter.interfaceDescriptionBlock(.init(linkType: 113, snapLength: 96, nanosecondTimestamps: nano,
                                                                 name: "input 0", description: "a.pcap"))
            Self.checkFrame(b, type: 1)
            #expect(Self.u16(b, 8) == 113 && Self.u16(b, 10) == 0)
            #expect(Self.u32(b, 12) == 96)
            let opts = Self.options(b, from: 16)
            #expect(opts.map(\.0) == [2, 3, 9])
            #expect(opts[0].1 == Array("input 0".utf8) && opts[1].1 == Array("a.pcap".utf8))
            #expect(opts[2].1 == [resolution], "if_tsresol")
        }
    }

    @Test func enhancedPacketPadsDataAndCarriesEveryComment() {
        let data: [UInt8] = [1, 2, 3, 4, 5]
        let time = Timestamp(seconds: 1_796_522_027, nanoseconds: 167_953_123)
        let comments = ["DB-SYN-1 info: extra 'id'", "ünïcödé ☃ comment", ""]
        let b = data.withUnsafeBytes {
            PcapngWriter.enhancedPacketBlock(interface: 2, nanosecondTimestamps: true, bytes: $0, wireLength: 1500, time: time, comments: comments)
        }
        Self.checkFrame(b, type: 6)
        #expect(Self.u32(b, 8) == 2, "interface id")
        let ns = UInt64(Self.u32(b, 12)) << 32 | UInt64(Self.u32(b, 16))
        #expect(ns == 1_796_522_027_167_953_123, "nanoseconds, upper word first")
        #expect(Self.u32(b, 20) == 5 && Self.u32(b, 24) == 1500, "captured and original length")
        #expect(Array(b[28..<33]) == data && Array(b[33..<36]) == [0, 0, 0], "data padded to 32 bits with zeros")
        let opts = Self.options(b, from: 36)
        #expect(opts.map(\.0) == [1, 1, 1], "one opt_comment per comment")
        #expect(opts.map { String(decoding: $0.1, as: UTF8.self) } == comments)

        let micro = data.withUnsafeBytes {
            PcapngWriter.enhancedPacketBlock(interface: 0, nanosecondTimestamps: false, bytes: $0, wireLength: 5, time: time, comments: [])
        }
        #expect(UInt64(Self.u32(micro, 12)) << 32 | UInt64(Self.u32(micro, 16)) == 1_796_522_027_167_953, "microseconds")
        #expect(micro.count == 28 + 8 + 4, "no options at all: no opt_endofopt either")
    }

    @Test func overlongCommentIsCutAtACharacterBoundary() {
        let long = String(repeating: "a", count: 65_533) + "☃☃"  // the first snowman ends at byte 65,536
        let cut = PcapngWriter.utf8(long)
        #expect(cut.count == 65_533)
        #expect(String(validatingCString: cut.map { CChar(bitPattern: $0) } + [0]) != nil)
        let b = [UInt8]().withUnsafeBytes {
            PcapngWriter.enhancedPacketBlock(interface: 0, nanosecondTimestamps: true, bytes: $0, wireLength: 0, time: .zero, comments: [long])
        }
        Self.checkFrame(b, type: 6)
        #expect(Self.u16(b, 30) == 65_533)
    }

    /// Two interfaces of different link types and resolutions, comments on some frames: tshark
    /// and capinfos read the file without a warning and see every field as written; libpcap reads
    /// a one-link-type file back to the same bytes and times.
    @Test func wiresharkAndLibpcapReadTheFile() throws {
        let path = NSTemporaryDirectory() + "s2scope-pcapng-\(UUID().uuidString).pcapng"
        defer { try? FileManager.default.removeItem(atPath: path) }
        // An Ethernet frame: zero MACs, IPv4, TCP 5269 → 40000 with 3 payload bytes; and the
        // same IPv4 packet as a raw-IP frame.
        let ip: [UInt8] = [0x45, 0, 0, 43, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
                           0x14, 0x95, 0x9C, 0x40, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0x20, 0, 0, 0, 0, 0, 0x3C, 0x61, 0x2F]
        let ether = [UInt8](repeating: 0, count: 12) + [0x08, 0x00] + ip
        let t0 = Timestamp(seconds: 1_700_000_000, nanoseconds: 123_456_789)
        let w = try PcapngWriter(path: path, application: "s2scope test")
        let eth = w.addInterface(.init(linkType: 1, snapLength: 65_535, nanosecondTimestamps: true, name: "input 0", description: "eth.pcap"))
        let raw = w.addInterface(.init(linkType: 101, snapLength: 96, nanosecondTimestamps: false, name: "input 1", description: "raw.pcap"))
        ether.withUnsafeBytes { w.write(interface: eth, bytes: $0, wireLength: ether.count, time: t0, comments: ["X-1 high: first, with a comma", "anomaly gap: second"]) }
        ip.withUnsafeBytes { w.write(interface: raw, bytes: $0, wireLength: 1_400, time: t0.adding(seconds: 1), comments: []) }
        ether.withUnsafeBytes { w.write(interface: eth, bytes: $0, wireLength: ether.count, time: t0.adding(seconds: 2), comments: ["X-2 info: <stream:features/> & ☃"]) }
        try w.close()
        #expect(w.packetsWritten == 3 && w.commentsWritten == 3)

        let tshark = try runProcess("/usr/bin/tshark", ["-r", path, "-T", "json", "-e", "frame.number", "-e", "frame.interface_id",
                                                        "-e", "frame.time_epoch", "-e", "frame.len", "-e", "frame.cap_len", "-e", "frame.comment"])
        #expect(tshark.status == 0, "\(tshark.stderr)")
        #expect(Self.warnings(tshark.stderr).isEmpty, "\(tshark.stderr)")
        let packets = try #require(try JSONSerialization.jsonObject(with: Data(tshark.stdout.utf8)) as? [[String: Any]])
        let layers = packets.compactMap { ($0["_source"] as? [String: Any])?["layers"] as? [String: [String]] }
        #expect(layers.count == 3)
        #expect(layers.map { $0["frame.interface_id"] ?? [] } == [["0"], ["1"], ["0"]])
        #expect(layers.map { $0["frame.time_epoch"] ?? [] } == [["1700000000.123456789"], ["1700000001.123456000"], ["1700000002.123456789"]],
                "nanoseconds kept on the nanosecond interface, microseconds on the other")
        #expect(layers.map { $0["frame.len"] ?? [] } == [["57"], ["1400"], ["57"]])
        #expect(layers.map { $0["frame.cap_len"] ?? [] } == [["57"], ["43"], ["57"]])
        #expect(layers.map { $0["frame.comment"] ?? [] } == [["X-1 high: first, with a comma", "anomaly gap: second"], [], ["X-2 info: <stream:features/> & ☃"]])

        let capinfos = try runProcess("/usr/bin/capinfos", ["-t", "-E", "-c", "-I", path])
        #expect(capinfos.status == 0 && Self.warnings(capinfos.stderr).isEmpty, "\(capinfos.stderr)")
        #expect(capinfos.stdout.contains("pcapng") && capinfos.stdout.contains("Number of packets:   3"))
        #expect(capinfos.stdout.contains("Encapsulation = Ethernet (1 - ether)") && capinfos.stdout.contains("Encapsulation = Raw IP (7 - rawip)"))
        #expect(capinfos.stdout.contains("Capture length = 96") && capinfos.stdout.contains("Time resolution = 0x09"))

        // libpcap (one link type per file) reads what it gets back exactly.
        let one = NSTemporaryDirectory() + "s2scope-pcapng-\(UUID().uuidString).pcapng"
        defer { try? FileManager.default.removeItem(atPath: one) }
        let w1 = try PcapngWriter(path: one, application: "")
        w1.addInterface(.init(linkType: 1, snapLength: 0, nanosecondTimestamps: true))
        for k in 0..<3 {
            ether.withUnsafeBytes { w1.write(interface: 0, bytes: $0, wireLength: 1_000 + k, time: t0.adding(seconds: Double(k)), comments: ["c\(k)"]) }
        }
        try w1.close()
        let reader = try PcapFileReader(path: one, inputIndex: 0)
        #expect(reader.format == .pcapng && reader.linkType == 1 && reader.nanosecondTimestamps)
        var seen: [(Int, Timestamp, [UInt8], Int)] = []
        #expect(reader.read { p in seen.append((p.frame.number, p.frame.time, Array(p.bytes), p.wireLength)); return true } == .endOfFile)
        #expect(seen.map(\.0) == [1, 2, 3])
        #expect(seen.map(\.1) == [t0, t0.adding(seconds: 1), t0.adding(seconds: 2)])
        #expect(seen.allSatisfy { $0.2 == ether })
        #expect(seen.map(\.3) == [1_000, 1_001, 1_002])
    }

    /// stderr lines of the Wireshark tools other than the note about running as root.
    static func warnings(_ stderr: String) -> [Substring] {
        stderr.split(separator: "\n").filter { !$0.hasPrefix("Running as user \"root\"") && !$0.isEmpty }
    }

    /// The timestamp resolution an input records decides the export's `if_tsresol`.
    @Test func inputResolutionIsReadFromTheFileHead() throws {
        let decode = repoRoot.appendingPathComponent("fixtures/decode")
        for (name, nano) in [("ethernet.pcap", false), ("nanosecond.pcap", true), ("pcapng-basic.pcapng", false), ("pcapng-nano.pcapng", true)] {
            let r = try PcapFileReader(path: decode.appendingPathComponent(name).path, inputIndex: 0)
            #expect(r.nanosecondTimestamps == nano, "\(name)")
        }
        // A damaged head (an IDB whose options run past the block) means microseconds, no trap.
        var b = PcapngWriter.sectionHeaderBlock(application: "")
        var idb = PcapngWriter.interfaceDescriptionBlock(.init(linkType: 1, snapLength: 0, nanosecondTimestamps: true))
        idb[18] = 0xFF  // first option's length
        idb[19] = 0xFF
        b += idb
        let path = temporaryFile(b, suffix: ".pcapng")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect((try? PcapFileReader(path: path, inputIndex: 0))?.nanosecondTimestamps != true)
    }
}
