package change

import (
	"fmt"
	"math/big"
	"strings"
	"time"
)

// FormatDatetime prints a DATETIME or TIMESTAMP value as MySQL does (and
// as records carry it): "YYYY-MM-DD HH:MM:SS" and, when fsp > 0, "." and
// exactly fsp fraction digits. Typed lake formats store the time and print
// it back with this.
func FormatDatetime(t time.Time, fsp int) string {
	s := t.Format(time.DateTime)
	if fsp > 0 {
		s += "." + fmt.Sprintf("%06d", t.Nanosecond()/1000)[:min(fsp, 6)]
	}
	return s
}

// FormatDecimal prints an unscaled DECIMAL value with scale decimals as
// MySQL does: "-" for a negative value, at least one integer digit, and no
// "." when scale is 0.
func FormatDecimal(unscaled *big.Int, scale int) string {
	digits := new(big.Int).Abs(unscaled).String()
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if unscaled.Sign() < 0 {
		return "-" + digits
	}
	return digits
}
