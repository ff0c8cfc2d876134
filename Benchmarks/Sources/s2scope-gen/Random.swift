#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// xoshiro256** seeded through SplitMix64: the same seed gives the same capture on every machine.
/// (Nothing in the generator iterates a Dictionary or Set: Swift randomises their order per process.)
struct Rng {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    init(seed: UInt64) {
        var x = seed
        func splitmix(_ x: inout UInt64) -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(&x); s1 = splitmix(&x); s2 = splitmix(&x); s3 = splitmix(&x)
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// 0 ..< n (n > 0).
    @inline(__always)
    mutating func below(_ n: Int) -> Int {
        Int(truncatingIfNeeded: (next().multipliedFullWidth(by: UInt64(n))).high)
    }

    /// a ... b inclusive.
    @inline(__always)
    mutating func range(_ a: Int, _ b: Int) -> Int { a + below(b - a + 1) }

    /// [0, 1).
    @inline(__always)
    mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    @inline(__always)
    mutating func chance(_ p: Double) -> Bool { unit() < p }

    /// Exponentially distributed with the given mean.
    mutating func exp(_ mean: Double) -> Double { -mean * log(1 - unit()) }

    /// Uniform in [a, b).
    mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * unit() }

    mutating func pick<T>(_ a: [T]) -> T { a[below(a.count)] }

    /// A child generator (independent stream) so that adding draws in one part of the generator
    /// does not shift every later draw elsewhere.
    mutating func fork() -> Rng { Rng(seed: next()) }
}
