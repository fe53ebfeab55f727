package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// validMessages holds one valid message of every type.
func validMessages() []Message {
	return []Message{
		&Hello{V: Version, ClientID: "", Run: "mnist-iid", Token: "s3cret",
			Device: Device{Kind: DeviceBrowser, UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/131", Platform: "Linux x86_64", Cores: 8, MemoryGB: 8, Workers: 1},
			Codecs: []string{"float32+zstd", "delta+topk:0.01+int8+zstd"}, ResumeVersion: 0},
		&Hello{V: Version, ClientID: "c_0f3a-9", Run: "r1", Device: Device{Kind: DeviceHeadless, Platform: "linux/amd64", Cores: 2, MemoryGB: 0.5, Workers: 4, Profile: "phone-low"},
			Codecs: []string{"float32"}, ResumeVersion: 12},
		&Welcome{ClientID: "c17",
			Run: RunInfo{ID: "r1", Name: "MNIST 2NN, IID", Model: "mnist_2nn", Dataset: "mnist", Rounds: 100, LocalEpochs: 1, Batch: 10,
				LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4, Codec: "delta+int8+zstd", DownCodec: "float32+zstd", Strategy: "fedavg", Mu: 0, Seed: 1<<63 + 5},
			Slice:  SliceInfo{Index: 3, Samples: 600, LabelCounts: []int{60, 60, 59, 61, 60, 60, 60, 60, 60, 60}, URL: "/api/runs/r1/slices/3"},
			Limits: UploadLimits{MaxUpdateBytes: 4 << 20}},
		&Wait{Reason: "waiting for 3 more clients", Round: 0, Clients: 7, Needed: 10},
		&Wait{Reason: "not selected for round 4", Round: 4, Clients: 100, Needed: 10},
		&RoundStart{Round: 4, ModelVersion: 4, DeadlineUnixMS: 1764218096123, Epochs: 5, Batch: 10, LR: 0.05, Mu: 0.01, Seed: 99},
		&Progress{Round: 4, Epoch: 2, Epochs: 5, Batch: 30, Batches: 60, Loss: 0.3125, SamplesPerS: 1520.5},
		&Accepted{Round: 4, Bytes: 12345},
		&Rejected{Round: 4, Reason: "The update arrived after the round closed.", Code: CodeLate},
		&RoundEnd{Round: 4, TestAccuracy: 0.9712, TestLoss: 0.094, Received: 10, Accepted: 9, ModelVersion: 5},
		&RunEnd{Reason: "target accuracy reached", FinalAccuracy: 0.97},
		&Decline{Round: 3, Reason: "training diverged: the weights are not finite"},
		&Bye{Reason: "tab closed"},
		&Bye{},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range validMessages() {
		b, err := Marshal(m)
		if err != nil {
			t.Fatalf("Marshal(%T) = %v", m, err)
		}
		if prefix := `{"type":"` + m.Type() + `"`; !bytes.HasPrefix(b, []byte(prefix)) {
			t.Errorf("Marshal(%T) = %s; want prefix %s", m, b, prefix)
		}
		got, err := ParseMessage(b, MaxMessageBytes)
		if err != nil {
			t.Fatalf("ParseMessage(%s) = %v", b, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("ParseMessage(Marshal(%T)) = %+v; want %+v", m, got, m)
		}
	}
}

func TestParseMessageErrors(t *testing.T) {
	huge := `{"type":"bye","reason":"` + strings.Repeat("x", MaxMessageBytes) + `"}`
	for _, tc := range []struct {
		name, in string
		want     error
		contains string
	}{
		{"too large", huge, ErrTooLarge, "exceeds limit"},
		{"empty", ``, ErrMalformed, "bad message"},
		{"not JSON", `hello`, ErrMalformed, "bad message"},
		{"array", `[{"type":"bye"}]`, ErrMalformed, "bad message"},
		{"null", `null`, ErrMalformed, `unknown message type ""`},
		{"no type", `{"reason":"x"}`, ErrMalformed, `unknown message type ""`},
		{"unknown type", `{"type":"update"}`, ErrMalformed, `unknown message type "update"`},
		{"long unknown type", `{"type":"` + strings.Repeat("a", 100) + `"}`, ErrMalformed, `unknown message type "aaaa`},
		{"type not a string", `{"type":7}`, ErrMalformed, "bad message"},
		{"unknown field", `{"type":"bye","reason":"x","extra":1}`, ErrMalformed, "unknown field"},
		{"trailing data", `{"type":"bye"} {"type":"bye"}`, ErrMalformed, "bad message"},
		{"trailing garbage", `{"type":"bye"}x`, ErrMalformed, "bad message"},
		{"nested object for string", `{"type":"bye","reason":{"a":"b"}}`, ErrMalformed, "bad bye message"},
		{"array for int", `{"type":"accepted","round":[1],"bytes":1}`, ErrMalformed, "bad accepted message"},
		{"NaN as string", `{"type":"progress","round":1,"epoch":1,"epochs":1,"batch":1,"batches":2,"loss":"NaN","samples_per_s":1}`, ErrMalformed, "bad progress message"},
		{"NaN bare", `{"type":"progress","loss":NaN}`, ErrMalformed, "bad message"},
		{"overflowing float", `{"type":"run_end","reason":"x","final_accuracy":1e999}`, ErrMalformed, "bad run_end message"},
		{"float for int", `{"type":"accepted","round":1.5,"bytes":1}`, ErrMalformed, "bad accepted message"},
		{"deep nesting", `{"type":"bye","reason":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, ErrMalformed, "bad bye message"},
		{"hello old version", `{"type":"hello","v":0,"device":{"kind":"browser"}}`, ErrMalformed, "hello.v = 0"},
		{"bad client id", `{"type":"hello","v":1,"client_id":"a b","device":{"kind":"browser"}}`, ErrMalformed, "hello.client_id"},
		{"long client id", `{"type":"hello","v":1,"client_id":"` + strings.Repeat("a", 65) + `","device":{"kind":"browser"}}`, ErrMalformed, "limit 64"},
		{"bad device", `{"type":"hello","v":1,"device":{"kind":"phone"}}`, ErrMalformed, "hello.device.kind"},
		{"negative cores", `{"type":"hello","v":1,"device":{"kind":"browser","cores":-1}}`, ErrMalformed, "hello.device.cores"},
		{"bad profile", `{"type":"hello","v":1,"device":{"kind":"browser","profile":"Phone_Low"}}`, ErrMalformed, "hello.device.profile has byte 'P'"},
		{"long profile", `{"type":"hello","v":1,"device":{"kind":"browser","profile":"` + strings.Repeat("a", 33) + `"}}`, ErrMalformed, "hello.device.profile is 33 bytes long; limit 32"},
		{"too many codecs", `{"type":"hello","v":1,"device":{"kind":"browser"},"codecs":[` + strings.Repeat(`"float32",`, 40) + `"x"]}`, ErrMalformed, "hello.codecs has 41"},
		{"control char", `{"type":"bye","reason":"a\u0007b"}`, ErrMalformed, "control"},
		{"negative round", `{"type":"accepted","round":-1,"bytes":0}`, ErrMalformed, "accepted.round"},
		{"accuracy above 1", `{"type":"run_end","reason":"x","final_accuracy":1.5}`, ErrMalformed, "final_accuracy"},
		{"accepted above received", `{"type":"round_end","round":1,"test_accuracy":0.5,"test_loss":1,"received":2,"accepted":3,"model_version":1}`, ErrMalformed, "round_end.accepted"},
		{"epoch above epochs", `{"type":"progress","round":1,"epoch":3,"epochs":2,"batch":1,"batches":2,"loss":1,"samples_per_s":1}`, ErrMalformed, "progress.epoch"},
		{"bad code", `{"type":"rejected","round":1,"reason":"x","code":"Too Late"}`, ErrMalformed, "rejected.code"},
		{"empty code", `{"type":"rejected","round":1,"reason":"x","code":""}`, ErrMalformed, "rejected.code"},
		{"welcome bad codec", welcomeWith(`"codec":"gzip"`), ErrMalformed, "welcome.run.codec"},
		{"welcome absolute url", welcomeWith(`"url":"https://evil.example/x"`), ErrMalformed, "welcome.slice.url"},
		{"welcome scheme-relative url", welcomeWith(`"url":"//evil.example/x"`), ErrMalformed, "welcome.slice.url"},
		{"welcome momentum", welcomeWith(`"momentum":1.5`), ErrMalformed, "welcome.run.momentum"},
		{"welcome negative label", welcomeWith(`"label_counts":[1,-1]`), ErrMalformed, "label_counts"},
	} {
		m, err := ParseMessage([]byte(tc.in), MaxMessageBytes)
		if err == nil || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.contains) {
			t.Errorf("%s: ParseMessage(%.60q) = %v, %v; want %v containing %q", tc.name, tc.in, m, err, tc.want, tc.contains)
		}
	}
}

// welcomeWith returns a valid welcome message with one member replaced.
func welcomeWith(member string) string {
	run := map[string]string{
		"id": `"r1"`, "name": `"n"`, "model": `"mnist_2nn"`, "dataset": `"mnist"`, "rounds": `10`, "local_epochs": `1`,
		"batch": `10`, "lr": `0.1`, "momentum": `0`, "weight_decay": `0`, "codec": `"float32"`, "down_codec": `"float32+zstd"`,
		"strategy": `"fedavg"`, "mu": `0`, "seed": `1`,
	}
	slice := map[string]string{"index": `0`, "samples": `10`, "label_counts": `[10]`, "url": `"/s/0"`}
	name, value, _ := strings.Cut(member, ":")
	name = strings.Trim(name, `"`)
	if _, ok := run[name]; ok {
		run[name] = value
	} else {
		slice[name] = value
	}
	obj := func(m map[string]string) string {
		var parts []string
		for k, v := range m {
			parts = append(parts, `"`+k+`":`+v)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return `{"type":"welcome","client_id":"c1","run":` + obj(run) + `,"slice":` + obj(slice) + `,"limits":{"max_update_bytes":1000}}`
}

func TestWelcomeWithIsValid(t *testing.T) {
	if _, err := ParseMessage([]byte(welcomeWith(`"name":"ok"`)), MaxMessageBytes); err != nil {
		t.Fatalf("ParseMessage(welcomeWith(name)) = %v; want a valid message", err)
	}
}

func TestMarshalRejectsInvalid(t *testing.T) {
	for _, m := range []Message{
		&Hello{V: 1, Device: Device{Kind: "toaster"}},
		&Progress{Round: 1, Epoch: 1, Epochs: 1, Loss: -1},
		&Rejected{Reason: "x"},
		&Wait{Reason: strings.Repeat("w", 300)},
	} {
		if b, err := Marshal(m); err == nil {
			t.Errorf("Marshal(%+v) = %s; want an error", m, b)
		}
	}
}

func TestRejectCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errorf(ErrTooLarge, "x"), CodeTooLarge},
		{errorf(ErrNotFinite, "x"), CodeNotFinite},
		{errorf(ErrShape, "x"), CodeShape},
		{errorf(ErrMalformed, "x"), CodeBadFrame},
		{errorf(ErrVersion, "x"), CodeBadFrame},
		{errors.New("other"), CodeBadFrame},
	} {
		if got := RejectCode(tc.err); got != tc.want {
			t.Errorf("RejectCode(%v) = %q; want %q", tc.err, got, tc.want)
		}
	}
}
