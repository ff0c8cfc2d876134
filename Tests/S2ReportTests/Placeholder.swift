import Testing
@Test func reportTestsPlaceholder() { #expect(Bool(true)) }
