import Crypto

/// XEP-0185 §2 dialback key recipe, as Prosody and ejabberd implement it:
/// `hex(HMAC-SHA256(key = hex(SHA256(secret)) as ASCII text, message = Receiving + " " + Originating + " " + StreamID))`.
public enum DialbackKey {
    public static func generate(secret: String, receiving: String, originating: String, streamID: String) -> String {
        let hashedSecret = hex(Array(SHA256.hash(data: Array(secret.utf8))))
        let mac = HMAC<SHA256>.authenticationCode(for: Array("\(receiving) \(originating) \(streamID)".utf8),
                                                  using: SymmetricKey(data: Array(hashedSecret.utf8)))
        return hex(Array(mac))
    }

    /// True when `key` has the XEP-0185 shape: 64 hexadecimal characters.
    public static func looksLikeXEP0185(_ key: String) -> Bool {
        key.utf8.count == 64 && key.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) || ($0 >= 65 && $0 <= 70) }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
