// fuzz-readers: libFuzzer targets for every file reader, and a replayer of saved inputs.
//
// Fuzzing (scripts/fuzz.sh builds this with -sanitize=fuzzer -DFUZZING into .build-fuzz):
//   FUZZ_FORMAT=npy .build-fuzz/release/fuzz-readers Fuzz/corpus/npy -max_total_time=1800
// Replaying (a normal build): fuzz-readers FORMAT FILE... feeds each file to the reader and prints
// its summary or error; a crash here is a bug to turn into a regression test.
import Foundation
import JEMCore

#if FUZZING
/// The format under test, from FUZZ_FORMAT (read once).
let fuzzFormat: FileFormat = {
    guard let s = ProcessInfo.processInfo.environment["FUZZ_FORMAT"], let f = FileFormat(rawValue: s) else {
        FileHandle.standardError.write(Data("set FUZZ_FORMAT to one of \(FileFormat.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return f
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ bytes: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = bytes.map { Data(bytes: $0, count: count) } ?? Data()
    _ = try? FileProbe.read(fuzzFormat, data: data, path: "/nonexistent/fuzz-input.\(fuzzFormat.rawValue)")
    return 0
}

/// libFuzzer's driver (SwiftPM points `main` at this module's entry point, so libFuzzer's own
/// `main` is not linked; its driver is called instead).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("fuzz_readers_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    _ = fuzzFormat
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v, fuzzOneInput)
}
#else
@main
struct FuzzReaders {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let f = args.first.flatMap(FileFormat.init(rawValue:)), args.count >= 2 else {
            print("usage: fuzz-readers \(FileFormat.allCases.map(\.rawValue).joined(separator: "|")) FILE...")
            exit(2)
        }
        for path in args.dropFirst() {
            guard let d = FileManager.default.contents(atPath: path) else { print("\(path): unreadable"); continue }
            do { print("\(path): ok, \(try FileProbe.read(f, data: d, path: path))") } catch { print("\(path): refused: \(error)") }
        }
    }
}
#endif
