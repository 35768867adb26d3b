// swift-tools-version:5.9
// robust-eval: a Swift toolkit that reads a classifier as a Joint Energy-based Model (JEM)
// and measures its adversarial robustness. C kernels (OpenMP + OpenBLAS) live in CJEMKernels;
// only JEMCore imports them.
import Foundation
import PackageDescription

// libomp-dev installs omp.h and libomp.so under /usr/lib/llvm-N/, outside the Swift toolchain's
// search paths; N (and clang's version directory) differ between Debian releases, so they are
// found here: the newest LLVM whose clang include directory holds omp.h. `-idirafter` keeps the
// toolchain's own clang builtin headers ahead of LLVM's.
func findOpenMP() -> (include: String, lib: String) {
    let fm = FileManager.default
    func versions(_ dir: String, prefix: String) -> [String] {
        let names = (try? fm.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { $0.hasPrefix(prefix) }.sorted {
            $0.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }.lexicographicallyPrecedes(
                $1.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) })
        }.reversed()
    }
    for llvm in versions("/usr/lib", prefix: "llvm-") {
        let clang = "/usr/lib/\(llvm)/lib/clang"
        for v in versions(clang, prefix: "") where fm.fileExists(atPath: "\(clang)/\(v)/include/omp.h") {
            return ("\(clang)/\(v)/include", "/usr/lib/\(llvm)/lib")
        }
    }
    return ("/usr/lib/llvm-14/lib/clang/14.0.6/include", "/usr/lib/llvm-14/lib")   // scripts/setup.sh installs it
}
let (ompInclude, ompLib) = findOpenMP()

// Debian's Open MPI (libopenmpi-dev) keeps mpi.h and libmpi.so under /usr/lib/<triple>/openmpi/.
func findMPI() -> (include: String, lib: String) {
    let fm = FileManager.default
    for triple in ((try? fm.contentsOfDirectory(atPath: "/usr/lib")) ?? []).sorted() {
        let base = "/usr/lib/\(triple)/openmpi"
        if fm.fileExists(atPath: "\(base)/include/mpi.h") { return ("\(base)/include", "\(base)/lib") }
    }
    return ("/usr/lib/x86_64-linux-gnu/openmpi/include", "/usr/lib/x86_64-linux-gnu/openmpi/lib")   // scripts/setup.sh installs it
}
let (mpiInclude, mpiLib) = findMPI()

let package = Package(
    name: "robust-eval",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "robust-eval", targets: ["robust-eval"]),
        .library(name: "JEMCore", targets: ["JEMCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
    ],
    targets: [
        .target(
            name: "CJEMKernels",
            cSettings: [
                // Optimised in every configuration: debug builds of the kernels are otherwise unusable.
                .unsafeFlags(["-O3", "-march=x86-64-v3", "-ffp-contract=fast", "-fopenmp",
                              "-idirafter", ompInclude, "-Wno-unused-command-line-argument"]),
            ],
            linkerSettings: [
                .unsafeFlags(["-L\(ompLib)"]),
                .linkedLibrary("omp"),
                .linkedLibrary("openblas"),
                .linkedLibrary("m"),
            ]
        ),
        // MPI behind plain C functions (scale-out: `mpirun -n N robust-eval ...`).
        .target(
            name: "CMPI",
            cSettings: [.unsafeFlags(["-O2", "-I\(mpiInclude)"])],
            linkerSettings: [.unsafeFlags(["-L\(mpiLib)", "-Xlinker", "-rpath", "-Xlinker", mpiLib]), .linkedLibrary("mpi")]
        ),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // ONNX's schema, generated once by scripts/gen_onnx_proto.sh (committed; not rebuilt by CI).
        .target(name: "ONNXProto", dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "JEMCore", dependencies: ["CJEMKernels", "CZlib", "ONNXProto",
                                           .product(name: "SwiftProtobuf", package: "swift-protobuf")]),
        .target(name: "Attacks", dependencies: ["JEMCore"]),
        .target(name: "JEMRobust", dependencies: ["JEMCore", "Attacks"]),
        .executableTarget(
            name: "robust-eval",
            dependencies: [
                "JEMCore", "Attacks", "JEMRobust", "CMPI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            resources: [.copy("Models")]
        ),
        // Fuzz targets for the file readers (scripts/fuzz.sh); a normal build replays saved inputs.
        .executableTarget(name: "fuzz-readers", dependencies: ["JEMCore"]),
        .testTarget(name: "JEMCoreTests", dependencies: ["JEMCore", "CJEMKernels", "CZlib"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "AttacksTests", dependencies: ["Attacks", "JEMCore"]),
        .testTarget(name: "JEMRobustTests", dependencies: ["JEMRobust", "Attacks", "JEMCore", "CZlib"]),
        .testTarget(name: "CLITests", dependencies: ["robust-eval", "JEMCore", "Attacks"]),
    ]
)
