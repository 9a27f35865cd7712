// libFuzzer target: CLIPTokenizer.tokenize / encode and the cleaning (ftfy subset, html.unescape) on arbitrary
// bytes decoded as UTF-8 (invalid sequences become U+FFFD, as Swift's String(decoding:) does). The vocabulary is
// data/clip/bpe_simple_vocab_16e6.txt.gz (launch/fetch-clip-vocab; SELORA_CLIP_VOCAB overrides), read once.
// Checks: ids in the vocabulary, and tokenize = [start] + encode (cut to fit) + [end], zero-padded to 77 (id 0 is
// also the token "!", so padding cannot be told from the ids alone).
// Input: text bytes
import Foundation
import Tokenizers

let tokenizer: CLIPTokenizer = {
    let path = ProcessInfo.processInfo.environment["SELORA_CLIP_VOCAB"] ?? "data/clip/bpe_simple_vocab_16e6.txt.gz"
    do { return try CLIPTokenizer(vocabularyPath: path) } catch { fatalError("fuzz setup: \(error)") }
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let ids = tokenizer.tokenize(text), body = tokenizer.encode(text), n = tokenizer.contextLength
    let used = min(body.count + 2, n)
    precondition(ids.count == n && ids[0] == tokenizer.startID && ids[used - 1] == tokenizer.endID)
    precondition(Array(ids[1..<(used - 1)]) == Array(body.prefix(used - 2)) && ids[used...].allSatisfy { $0 == 0 })
    precondition(body.allSatisfy { $0 >= 0 && Int($0) < tokenizer.vocabularySize })
    precondition(!CLIPTokenizer.clean(text).hasPrefix(" ") && !CLIPTokenizer.clean(text).hasSuffix(" "))
    fuzzNote("\(ids.prefix(used))")
    return 0
}
