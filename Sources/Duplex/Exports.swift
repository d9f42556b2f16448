@_exported import DuplexCore
