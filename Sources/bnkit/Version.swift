/// `bnkit --version`: the package's release, the tag a URL dependency names
/// (`from: "0.1.0"`). Raise it with each tagged release.
let bnkitVersion = "0.1.0"
