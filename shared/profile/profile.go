package profile

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Profile is a kind of client device: how fast it trains, its network, and
// how reliably it stays online.
type Profile struct {
	Name        string
	TrainGFLOPS float64       // sustained fp32 training throughput of our trainer on such a device (in a tab)
	DownMbps    float64       // download bandwidth, megabits per second
	UpMbps      float64       // upload bandwidth, megabits per second
	RTT         time.Duration // network round-trip latency
	OnlineMean  time.Duration // availability: mean length of an online period (0 with OfflineMean 0: always online)
	OfflineMean time.Duration // mean length of an offline period (0: never goes offline)
	DropProb    float64       // chance per task that the device abandons it mid-training
	Source      string        // short note of where the figures come from
}

// MaxNameLen is the longest profile name, in bytes.
const MaxNameLen = 32

// ErrUnknown is returned (wrapped) by Lookup and ParseMix for a name that
// is not a built-in profile.
var ErrUnknown = errors.New("profile: unknown profile")

// The built-in profiles, fastest first. See the README, "Device profiles",
// for the sources in full. The laptop anchors compute: 13 GFLOPS is our
// trainer's measured speed in headless Chromium (SIMD128 build, 2 workers:
// 176 samples/s of mnist-cnn at 73.6 MFLOPs each); the others scale it by
// Geekbench 5 multi-core scores against an Apple M1 laptop (7,288).
var builtin = []Profile{
	{
		Name: "desktop", TrainGFLOPS: 31, DownMbps: 97.61, UpMbps: 52.84, RTT: 9 * time.Millisecond,
		Source: "compute: laptop x 2.37 (Geekbench 5 multi-core, Core i9-12900K 17,299 vs M1 7,288), estimate; " +
			"network: Ookla Speedtest Global Index, fixed broadband global median, Jan 2025; always online, no drops (estimate)",
	},
	{
		Name: "laptop", TrainGFLOPS: 13, DownMbps: 97.61, UpMbps: 52.84, RTT: 9 * time.Millisecond,
		Source: "compute: our trainer measured in headless Chromium (SIMD128, 2 workers, mnist-cnn 176 samples/s); " +
			"network: Ookla Speedtest Global Index, fixed broadband global median, Jan 2025; always online, no drops (estimate)",
	},
	{
		Name: "phone-high", TrainGFLOPS: 6.6, DownMbps: 166.13, UpMbps: 21.08, RTT: 28 * time.Millisecond,
		OnlineMean: 30 * time.Minute, OfflineMean: 10 * time.Minute, DropProb: 0.06,
		Source: "compute: laptop x 0.51 (Geekbench 5 multi-core, Snapdragon 888 3,718 vs M1 7,288), estimate; " +
			"network: Ookla global 5G median Q3 2021, mobile median latency Nov 2022; drops: Bonawitz et al. 2019 (6-10%), low end; on/off periods: estimate",
	},
	{
		Name: "phone-low", TrainGFLOPS: 2.6, DownMbps: 25.29, UpMbps: 5.51, RTT: 32 * time.Millisecond,
		OnlineMean: 20 * time.Minute, OfflineMean: 20 * time.Minute, DropProb: 0.10,
		Source: "compute: laptop / 5 (Geekbench 5, Snapdragon 680 vs M1: multi-core 1,568 vs 7,288 = 4.6x, single-core 374 vs 1,689 = 4.5x), estimate; " +
			"network: Ookla Speedtest Global Index, India mobile median, Dec 2022; drops: Bonawitz et al. 2019 (6-10%), high end; on/off periods: estimate",
	},
	{
		Name: "iot", TrainGFLOPS: 1.05, DownMbps: 25.29, UpMbps: 5.51, RTT: 32 * time.Millisecond,
		OnlineMean: 60 * time.Minute, OfflineMean: 15 * time.Minute, DropProb: 0.10,
		Source: "compute: laptop x 0.081 (Geekbench 5 multi-core, Raspberry Pi 4 at 1.5 GHz 596 vs M1 7,401), estimate; " +
			"network: phone-low's 4G link (a board with a cellular modem), estimate; drops and on/off periods: estimate",
	},
}

// Lookup returns the built-in profile of that name, or an error that wraps
// ErrUnknown and lists the known names.
func Lookup(name string) (Profile, error) {
	for _, p := range builtin {
		if p.Name == name {
			return p, nil
		}
	}
	return Profile{}, fmt.Errorf("%w %.40q (known: %s)", ErrUnknown, name, strings.Join(Names(), ", "))
}

// All returns the built-in profiles, fastest first (a copy: changing it
// changes nothing here).
func All() []Profile { return append([]Profile(nil), builtin...) }

// Names returns the built-in profiles' names in All's order.
func Names() []string {
	n := make([]string, len(builtin))
	for i, p := range builtin {
		n[i] = p.Name
	}
	return n
}

// CheckName reports whether s can name a profile: 1 to MaxNameLen bytes of
// [a-z0-9-].
func CheckName(s string) error {
	if s == "" || len(s) > MaxNameLen {
		return fmt.Errorf("profile: name %.40q has %d bytes; want 1..%d", s, len(s), MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("profile: name %.40q has byte %q at %d; want [a-z0-9-]", s, c, i)
		}
	}
	return nil
}

// Validate checks that p's figures make sense: a valid name, positive
// finite speeds, non-negative durations, an online period wherever there
// is an offline one, and a drop chance in [0, 1].
func (p Profile) Validate() error {
	pos := func(v float64) bool { return v > 0 && !math.IsInf(v, 0) }
	switch {
	case CheckName(p.Name) != nil:
		return CheckName(p.Name)
	case !pos(p.TrainGFLOPS), !pos(p.DownMbps), !pos(p.UpMbps):
		return fmt.Errorf("profile %s: speeds %g GFLOPS, %g Mbps down, %g Mbps up must be positive and finite",
			p.Name, p.TrainGFLOPS, p.DownMbps, p.UpMbps)
	case p.RTT < 0, p.OnlineMean < 0, p.OfflineMean < 0:
		return fmt.Errorf("profile %s: RTT %v and online/offline means %v/%v must not be negative", p.Name, p.RTT, p.OnlineMean, p.OfflineMean)
	case p.OfflineMean > 0 && p.OnlineMean == 0:
		return fmt.Errorf("profile %s: an offline mean of %v needs an online mean too", p.Name, p.OfflineMean)
	case !(p.DropProb >= 0 && p.DropProb <= 1):
		return fmt.Errorf("profile %s: drop chance %g is not in [0, 1]", p.Name, p.DropProb)
	}
	return nil
}

// String returns the profile's name.
func (p Profile) String() string { return p.Name }
