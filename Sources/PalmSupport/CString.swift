extension String {
    /// The text of a C character buffer up to its first NUL (all of it if it has none): what C
    /// APIs that fill a caller's array return. Invalid UTF-8 is repaired, never trusted.
    public init(nulTerminated buffer: [CChar]) {
        self.init(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
