/// A check palm runs on TOML text before TOMLKit parses it, because the parser under TOMLKit
/// (toml++) *aborts the process* on one malformed input instead of reporting it: a table header
/// whose first key does not start with a bare-key character or a quote (`[,`, `[[ +`, `[` at the
/// end of a line) trips an assertion in `parse_key()` — in release builds too, since SwiftPM does
/// not define NDEBUG for C++. Found by fuzzing (Fuzz/Regressions/FuzzConfig/table-header-assert).
///
/// Guarantees: every table header at the top level (outside strings, comments, arrays and inline
/// tables) is checked, and only there — a nested array or an inline table on a line of its own
/// inside a multi-line array is a value, not a header, and passes. Returns the first offending
/// header as (line, column), 1-based, or nil.
public enum TOMLHeaderCheck {
    public static func firstBadHeader(in text: String) -> (line: Int, column: Int)? {
        let s = Array(text.utf8)
        var i = 0, line = 1, lineStart = 0
        var depth = 0                 // open [ and { of values
        var atLineStart = true        // only whitespace so far on this line (at depth 0)
        var expectValue = false       // after '=' at depth 0 until the end of the line
        func at(_ k: Int) -> UInt8 { k < s.count ? s[k] : 0 }
        while i < s.count {
            let c = s[i]
            switch c {
            case UInt8(ascii: "\n"):
                line += 1; lineStart = i + 1; atLineStart = true
                if depth == 0 { expectValue = false }
                i += 1; continue
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\r"):
                i += 1; continue
            case UInt8(ascii: "#"):
                while i < s.count && s[i] != UInt8(ascii: "\n") { i += 1 }
                continue
            case UInt8(ascii: "\""), UInt8(ascii: "'"):
                let triple = at(i + 1) == c && at(i + 2) == c
                i += triple ? 3 : 1
                while i < s.count {
                    if s[i] == UInt8(ascii: "\\") && c == UInt8(ascii: "\"") { i += 2; continue }
                    if s[i] == UInt8(ascii: "\n") { line += 1; lineStart = i + 1; if !triple { break } }
                    if s[i] == c && (!triple || (at(i + 1) == c && at(i + 2) == c)) { i += triple ? 3 : 1; break }
                    i += 1
                }
                atLineStart = false
                continue
            case UInt8(ascii: "["):
                if depth == 0 && atLineStart && !expectValue {
                    // A table header: what follows '[' or '[[' (and blanks) must start a key or be ']'.
                    var k = i + 1
                    if at(k) == UInt8(ascii: "[") { k += 1 }
                    while at(k) == UInt8(ascii: " ") || at(k) == UInt8(ascii: "\t") { k += 1 }
                    let n = at(k)
                    let ok = (n >= UInt8(ascii: "a") && n <= UInt8(ascii: "z")) || (n >= UInt8(ascii: "A") && n <= UInt8(ascii: "Z"))
                        || (n >= UInt8(ascii: "0") && n <= UInt8(ascii: "9")) || n == UInt8(ascii: "_") || n == UInt8(ascii: "-")
                        || n == UInt8(ascii: "\"") || n == UInt8(ascii: "'") || n == UInt8(ascii: "]") || n == UInt8(ascii: "[")
                    if !ok { return (line, k - lineStart + 1) }
                    // Past the opening bracket(s); the key (strings included) is lexed as usual and
                    // the closing ']' cannot take the depth below zero.
                    i += at(i + 1) == UInt8(ascii: "[") ? 2 : 1
                    atLineStart = false
                    continue
                }
                depth += 1
            case UInt8(ascii: "{"):
                depth += 1
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth = max(0, depth - 1)
            case UInt8(ascii: "="):
                if depth == 0 { expectValue = true }
            default:
                break
            }
            atLineStart = false
            i += 1
        }
        return nil
    }
}
