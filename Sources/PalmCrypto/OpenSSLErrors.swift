import PalmSupport
import COpenSSLShims

/// Reads OpenSSL's thread-local error queue.
package enum OpenSSLErrors {
    package struct Entry {
        package let library: Int32
        package let reason: Int32
        package let text: String
    }

    /// Drains the queue, oldest first.
    package static func drain() -> [Entry] {
        var entries: [Entry] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buf = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buf, buf.count)
            entries.append(Entry(library: palm_err_get_lib(code), reason: palm_err_get_reason(code),
                                 text: String(nulTerminated: buf)))
        }
        return entries
    }

    /// A one-line summary of the queue (drains it).
    package static func summary(_ fallback: String = "unknown OpenSSL error") -> String {
        let texts = drain().map(\.text)
        return texts.isEmpty ? fallback : texts.joined(separator: "; ")
    }
}
