"""Log parsers: KTAP/TAP, kselftest, LTP, kirk and LAVA, into one result model."""
