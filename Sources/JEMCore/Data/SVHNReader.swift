// SVHNReader.swift: placeholder until the MATLAB v5 reader lands.
import Foundation

public enum SVHNReader {
    public static func load(path: String) throws -> Dataset {
        throw JEMError.invalidArgument("svhn:\(path): the SVHN .mat reader is not implemented yet")
    }
}
