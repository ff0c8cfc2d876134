import Crypto

/// The hash of a cipher suite (TLS 1.3 HKDF, TLS 1.2 PRF).
enum SuiteHash: Sendable {
    case sha256, sha384

    var length: Int { self == .sha256 ? 32 : 48 }

    func hmac(key: [UInt8], _ data: [UInt8]) -> [UInt8] {
        let k = SymmetricKey(data: key)
        switch self {
        case .sha256: return Array(HMAC<SHA256>.authenticationCode(for: data, using: k))
        case .sha384: return Array(HMAC<SHA384>.authenticationCode(for: data, using: k))
        }
    }

    /// RFC 5869 HKDF-Expand.
    func hkdfExpand(prk: [UInt8], info: [UInt8], length: Int) -> [UInt8] {
        let key: SymmetricKey
        switch self {
        case .sha256: key = HKDF<SHA256>.expand(pseudoRandomKey: prk, info: info, outputByteCount: length)
        case .sha384: key = HKDF<SHA384>.expand(pseudoRandomKey: prk, info: info, outputByteCount: length)
        }
        return key.withUnsafeBytes { Array($0) }
    }

    /// RFC 8446 §7.1 HKDF-Expand-Label(Secret, Label, Context, Length).
    func expandLabel(secret: [UInt8], label: String, context: [UInt8] = [], length: Int) -> [UInt8] {
        let full = Array("tls13 \(label)".utf8)
        var info: [UInt8] = [UInt8(length >> 8), UInt8(length & 0xff), UInt8(full.count)]
        info += full
        info.append(UInt8(context.count))
        info += context
        return hkdfExpand(prk: secret, info: info, length: length)
    }

    /// RFC 5246 §5 PRF(secret, label, seed) = P_hash(secret, label + seed).
    func prf(secret: [UInt8], label: String, seed: [UInt8], length: Int) -> [UInt8] {
        let s = Array(label.utf8) + seed
        var out: [UInt8] = []
        var a = s
        while out.count < length {
            a = hmac(key: secret, a)
            out += hmac(key: secret, a + s)
        }
        return Array(out.prefix(length))
    }
}

/// The AEAD of a cipher suite.
enum AEADKind: Sendable {
    case aesGCM(keyLength: Int)
    case chacha20Poly1305

    var keyLength: Int {
        switch self {
        case .aesGCM(let n): return n
        case .chacha20Poly1305: return 32
        }
    }

    var name: String {
        switch self {
        case .aesGCM(let n): return "AES-\(n * 8)-GCM"
        case .chacha20Poly1305: return "ChaCha20-Poly1305"
        }
    }

    /// Opens `ciphertext || tag` (16-byte tag); nil when authentication fails.
    func open(key: [UInt8], nonce: [UInt8], sealed: ArraySlice<UInt8>, aad: [UInt8]) -> [UInt8]? {
        guard sealed.count >= 16 else { return nil }
        let ct = sealed.prefix(sealed.count - 16)
        let tag = sealed.suffix(16)
        do {
            switch self {
            case .aesGCM:
                let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: ct, tag: tag)
                return Array(try AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: aad))
            case .chacha20Poly1305:
                let box = try ChaChaPoly.SealedBox(nonce: ChaChaPoly.Nonce(data: nonce), ciphertext: ct, tag: tag)
                return Array(try ChaChaPoly.open(box, using: SymmetricKey(data: key), authenticating: aad))
            }
        } catch {
            return nil
        }
    }
}

/// What S2Scope knows about a cipher suite: its name and, for the suites it decrypts, the AEAD
/// and hash.
struct CipherSuite: Sendable {
    let id: UInt16
    let name: String
    /// nil: not decryptable by S2Scope (CBC, stream ciphers, CCM…).
    let aead: AEADKind?
    let hash: SuiteHash
    /// TLS 1.2 AEAD: bytes of the implicit IV (4 for GCM's salt, 12 for ChaCha20-Poly1305).
    var fixedIVLength: Int {
        if case .chacha20Poly1305 = aead { return 12 }
        return 4
    }
    var isTLS13: Bool { id >> 8 == 0x13 }

    static func lookup(_ id: UInt16) -> CipherSuite {
        if let s = known[id] { return s }
        return CipherSuite(id: id, name: "0x" + String(id, radix: 16, uppercase: true).leftPadded(4), aead: nil, hash: .sha256)
    }

    static let known: [UInt16: CipherSuite] = {
        var t: [UInt16: CipherSuite] = [:]
        func add(_ id: UInt16, _ name: String, _ aead: AEADKind?, _ hash: SuiteHash = .sha256) {
            t[id] = CipherSuite(id: id, name: name, aead: aead, hash: hash)
        }
        let g128 = AEADKind.aesGCM(keyLength: 16), g256 = AEADKind.aesGCM(keyLength: 32), cc = AEADKind.chacha20Poly1305
        // TLS 1.3
        add(0x1301, "TLS_AES_128_GCM_SHA256", g128)
        add(0x1302, "TLS_AES_256_GCM_SHA384", g256, .sha384)
        add(0x1303, "TLS_CHACHA20_POLY1305_SHA256", cc)
        add(0x1304, "TLS_AES_128_CCM_SHA256", nil)
        add(0x1305, "TLS_AES_128_CCM_8_SHA256", nil)
        // TLS 1.2 AEAD
        add(0x009C, "TLS_RSA_WITH_AES_128_GCM_SHA256", g128)
        add(0x009D, "TLS_RSA_WITH_AES_256_GCM_SHA384", g256, .sha384)
        add(0x009E, "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", g128)
        add(0x009F, "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", g256, .sha384)
        add(0xC02B, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", g128)
        add(0xC02C, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", g256, .sha384)
        add(0xC02F, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", g128)
        add(0xC030, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", g256, .sha384)
        add(0xCCA8, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", cc)
        add(0xCCA9, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", cc)
        add(0xCCAA, "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256", cc)
        // Common non-AEAD suites (named, not decrypted)
        add(0x002F, "TLS_RSA_WITH_AES_128_CBC_SHA", nil)
        add(0x0035, "TLS_RSA_WITH_AES_256_CBC_SHA", nil)
        add(0x003C, "TLS_RSA_WITH_AES_128_CBC_SHA256", nil)
        add(0x003D, "TLS_RSA_WITH_AES_256_CBC_SHA256", nil)
        add(0xC009, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", nil)
        add(0xC00A, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", nil)
        add(0xC013, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", nil)
        add(0xC014, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", nil)
        add(0xC023, "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", nil)
        add(0xC024, "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384", nil, .sha384)
        add(0xC027, "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", nil)
        add(0xC028, "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", nil, .sha384)
        return t
    }()
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

/// One direction's record protection: key, IV and sequence number of the current epoch.
struct RecordProtection {
    let aead: AEADKind
    let key: [UInt8]
    let iv: [UInt8]
    /// TLS 1.2 GCM: 8-byte explicit nonce at the start of each record.
    let explicitNonce: Bool
    /// TLS 1.3: the traffic secret (for KeyUpdate).
    let secret: [UInt8]
    var seq: UInt64 = 0

    /// TLS 1.3 (RFC 8446 §7.3): key and iv from a traffic secret.
    static func tls13(suite: CipherSuite, secret: [UInt8]) -> RecordProtection? {
        guard let aead = suite.aead else { return nil }
        let key = suite.hash.expandLabel(secret: secret, label: "key", length: aead.keyLength)
        let iv = suite.hash.expandLabel(secret: secret, label: "iv", length: 12)
        return RecordProtection(aead: aead, key: key, iv: iv, explicitNonce: false, secret: secret)
    }

    /// The next epoch after a KeyUpdate (RFC 8446 §7.2).
    func updated(suite: CipherSuite) -> RecordProtection? {
        let next = suite.hash.expandLabel(secret: secret, label: "traffic upd", length: suite.hash.length)
        return RecordProtection.tls13(suite: suite, secret: next)
    }

    /// TLS 1.2 AEAD (RFC 5246 §6.3, RFC 5288, RFC 7905): both directions from the master secret.
    static func tls12(suite: CipherSuite, master: [UInt8], clientRandom: [UInt8], serverRandom: [UInt8])
        -> (client: RecordProtection, server: RecordProtection)? {
        guard let aead = suite.aead, !suite.isTLS13 else { return nil }
        let kl = aead.keyLength, il = suite.fixedIVLength
        let block = suite.hash.prf(secret: master, label: "key expansion", seed: serverRandom + clientRandom,
                                   length: 2 * kl + 2 * il)
        let ck = Array(block[0..<kl]), sk = Array(block[kl..<(2 * kl)])
        let civ = Array(block[(2 * kl)..<(2 * kl + il)]), siv = Array(block[(2 * kl + il)..<(2 * kl + 2 * il)])
        let explicit = il == 4
        return (RecordProtection(aead: aead, key: ck, iv: civ, explicitNonce: explicit, secret: []),
                RecordProtection(aead: aead, key: sk, iv: siv, explicitNonce: explicit, secret: []))
    }

    /// Decrypts one record's fragment. TLS 1.3: returns the TLSInnerPlaintext (content + type +
    /// padding); TLS 1.2: the plaintext. nil when authentication fails.
    /// `fragment` is at most 18,432 bytes (TLSSession refuses longer records), so the length
    /// bytes of the AAD below (`UInt8(n >> 8)`, at most 72) cannot trap.
    mutating func open(type: UInt8, version: UInt16, fragment: ArraySlice<UInt8>, tls13: Bool) -> [UInt8]? {
        var nonce: [UInt8]
        var sealed = fragment
        let aad: [UInt8]
        if tls13 {
            nonce = iv
            for i in 0..<8 { nonce[11 - i] ^= UInt8((seq >> (8 * UInt64(i))) & 0xff) }
            let n = fragment.count
            aad = [type, UInt8(version >> 8), UInt8(version & 0xff), UInt8(n >> 8), UInt8(n & 0xff)]
        } else {
            if explicitNonce {
                guard fragment.count >= 8 + 16 else { return nil }
                nonce = iv + Array(fragment.prefix(8))
                sealed = fragment.dropFirst(8)
            } else {
                nonce = iv
                for i in 0..<8 { nonce[11 - i] ^= UInt8((seq >> (8 * UInt64(i))) & 0xff) }
            }
            let plainLength = max(0, sealed.count - 16)
            var a: [UInt8] = []
            for i in (0..<8).reversed() { a.append(UInt8((seq >> (8 * UInt64(i))) & 0xff)) }
            a += [type, UInt8(version >> 8), UInt8(version & 0xff), UInt8(plainLength >> 8), UInt8(plainLength & 0xff)]
            aad = a
        }
        guard let plain = aead.open(key: key, nonce: nonce, sealed: sealed, aad: aad) else { return nil }
        seq &+= 1
        return plain
    }
}
