import DuplexCore
