import Foundation
import Testing
import S2Capture

/// The Decryption Secrets Block reader: blocks written by editcap, and hand-made files in both
/// byte orders, cut or lying about their lengths.
struct PcapngSecretsTests {
    /// The secrets of a file holding `bytes` (written to a temporary file, removed after).
    static func read(_ bytes: [UInt8]) -> PcapngSecrets.Result {
        let p = NSTemporaryDirectory() + "s2scope-dsb-\(UUID().uuidString).pcapng"
        precondition(FileManager.default.createFile(atPath: p, contents: Data(bytes)), "\(p) could not be written")
        defer { try? FileManager.default.removeItem(atPath: p) }
        return PcapngSecrets.read(path: p)
    }

    static func u32(_ v: UInt32, _ big: Bool) -> [UInt8] {
        let b = [UInt8(v & 0xff), UInt8(v >> 8 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 24)]
        return big ? b.reversed() : b
    }

    static func shb(_ big: Bool) -> [UInt8] {
        u32(0x0A0D0D0A, big) + u32(28, big) + u32(0x1A2B3C4D, big) + (big ? [0, 1, 0, 0] : [1, 0, 0, 0])
            + [UInt8](repeating: 0xff, count: 8) + u32(28, big)
    }

    static func dsb(_ secrets: [UInt8], type: UInt32 = 0x544C534B, big: Bool, claim: UInt32? = nil, trailer: UInt32? = nil) -> [UInt8] {
        let padded = secrets + [UInt8](repeating: 0, count: (4 - secrets.count % 4) % 4)
        let len = UInt32(20 + padded.count)
        return u32(0x0A, big) + u32(len, big) + u32(type, big) + u32(claim ?? UInt32(secrets.count), big) + padded + u32(trailer ?? len, big)
    }

    static func idb(_ big: Bool) -> [UInt8] {
        u32(1, big) + u32(20, big) + (big ? [0, 1] : [1, 0]) + [0, 0] + u32(65535, big) + u32(20, big)
    }

    static let keys = Array("CLIENT_RANDOM \(String(repeating: "ab", count: 32)) \(String(repeating: "cd", count: 48))\n".utf8)

    @Test(arguments: [false, true])
    func readsSecretsInEitherByteOrder(bigEndian big: Bool) {
        let file = Self.shb(big) + Self.idb(big) + Self.dsb(Self.keys, big: big) + Self.dsb(Array("x".utf8), type: 0x57474B4C, big: big)
        let r = Self.read(file)
        #expect(r.notes.isEmpty, "\(r.notes)")
        #expect(r.blocks.count == 2)
        #expect(r.blocks[0].secretsType == PcapngSecrets.tlsKeyLog && r.blocks[0].data == Self.keys)
        #expect(r.blocks[1].secretsType == 0x57474B4C && r.blocks[1].data == Array("x".utf8))
    }

    @Test func aPcapOrAMissingFileHasNoSecrets() throws {
        let pcap = [UInt8]([0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0] + [UInt8](repeating: 0, count: 16))
        #expect(Self.read(pcap).blocks.isEmpty)
        #expect(PcapngSecrets.read(path: "/nonexistent").blocks.isEmpty)
        #expect(PcapngSecrets.read(path: "-").blocks.isEmpty)
        #expect(Self.read([]).notes.isEmpty)
        // A short file that is not pcapng says nothing either (the capture reader explains it).
        let short = Self.read([0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00])
        #expect(short.blocks.isEmpty && short.notes.isEmpty)
    }

    @Test func damagedBlocksStopTheWalkWithANoteAndKeepWhatCameBefore() {
        let good = Self.shb(false) + Self.dsb(Self.keys, big: false)
        let cases: [([UInt8], String)] = [
            // The secrets length claims more than the block holds.
            (Self.dsb(Self.keys, big: false, claim: 5000), "claims 5000 bytes"),
            // Leading and trailing lengths differ.
            (Self.dsb(Self.keys, big: false, trailer: 12), "trailing length"),
            // A length that is not a multiple of 4 / smaller than a header.
            (Self.u32(6, false) + Self.u32(13, false) + [0, 0, 0, 0, 0], "impossible length"),
            (Self.u32(6, false) + Self.u32(4, false), "impossible length"),
            // The file ends inside a block.
            (Array(Self.dsb(Self.keys, big: false).prefix(40)), "ends inside the block"),
            (Array(Self.dsb(Self.keys, big: false).prefix(5)), "ends inside a block header"),
        ]
        for (tail, needle) in cases {
            let r = Self.read(good + tail)
            #expect(r.blocks.count == 1 && r.blocks[0].data == Self.keys, "\(needle)")
            #expect(r.notes.count == 1 && r.notes[0].contains(needle), "\(needle): \(r.notes)")
        }
        // A section header without the byte-order magic.
        var bad = Self.shb(false)
        bad[8] = 0
        #expect(Self.read(bad).notes.first?.contains("byte-order magic") == true)
    }

    /// A capture editcap wrote (`--inject-secrets tls,KEYLOG`) carries exactly the key log.
    @Test func editcapSecretsAreTheKeyLog() throws {
        let r = PcapngSecrets.read(path: fixture("servers-sasl-tls13-dsb.pcapng"))
        #expect(r.notes.isEmpty && r.blocks.count == 1)
        let keylog = try Data(contentsOf: URL(fileURLWithPath: fixture("servers-sasl-tls13.prosody.keylog")))
        #expect(r.blocks[0].secretsType == PcapngSecrets.tlsKeyLog && Data(r.blocks[0].data) == keylog)
    }
}
