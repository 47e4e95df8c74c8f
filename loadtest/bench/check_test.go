package bench

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func checkStage(path string, load, errs int, procs ...ProcStats) Stage {
	return Stage{Kind: KindClosed, Load: load, Path: path, Errors: errs, Procs: procs}
}

func TestMeasureCheck(t *testing.T) {
	t.Parallel()
	gen := ProcStats{Name: "bench", Role: RoleGenerator, CPUMicrosPerR: 90}
	r := &Result{Stages: []Stage{
		checkStage(PathDirect, 300, 0, gen),
		checkStage(PathEnvoy, 300, 0, ProcStats{Role: roleEnvoy, CPUMicrosPerR: 100}, gen),
		checkStage(PathGateway, 300, 0, ProcStats{Role: roleEnvoy, CPUMicrosPerR: 180}, ProcStats{Role: roleExtproc, CPUMicrosPerR: 50}, gen),
		checkStage(PathGateway, 50, 0, ProcStats{Role: roleEnvoy, CPUMicrosPerR: 999}, ProcStats{Role: roleExtproc, CPUMicrosPerR: 999}),
	}}
	got, err := MeasureCheck(r, 300)
	if err != nil {
		t.Fatal(err)
	}
	// The generator is no part of either path; the tax is 180+50-100.
	want := CheckFigures{Load: 300, EnvoyMicros: 100, ExtprocMicros: 50, TaxMicros: 130, ExtprocRatio: 0.5, TaxRatio: 1.3}
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(0, 1e-9)); diff != "" {
		t.Errorf("figures (-want +got)\n%s", diff)
	}

	for name, tc := range map[string]struct {
		r       *Result
		wantErr string
	}{
		"no stage at that load": {r, "no closed-loop stage at 500 VUs"},
		"errors on a path": {&Result{Stages: []Stage{
			checkStage(PathEnvoy, 500, 0, ProcStats{Role: roleEnvoy, CPUMicrosPerR: 1}),
			checkStage(PathGateway, 500, 3, ProcStats{Role: roleExtproc, CPUMicrosPerR: 1}),
		}}, "gateway at 500 VUs: 3 errors"},
		"no cpu sampled": {&Result{Stages: []Stage{
			checkStage(PathEnvoy, 500, 0), checkStage(PathGateway, 500, 0, ProcStats{Role: roleExtproc, CPUMicrosPerR: 1}),
		}}, "must both have sampled CPU time"},
	} {
		if _, err := MeasureCheck(tc.r, 500); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error %v, want %q", name, err, tc.wantErr)
		}
	}
}

func TestCompareCheck(t *testing.T) {
	t.Parallel()
	committed := CheckFigures{Load: 300, ExtprocRatio: 0.40, TaxRatio: 1.00}
	tests := []struct {
		name       string
		measured   CheckFigures
		wantFail   []bool // extproc, tax
		wantFailed bool
	}{
		{"same", committed, []bool{false, false}, false},
		{"better", CheckFigures{ExtprocRatio: 0.2, TaxRatio: 0.5}, []bool{false, false}, false},
		{"exactly 25 % worse passes", CheckFigures{ExtprocRatio: 0.50, TaxRatio: 1.25}, []bool{false, false}, false},
		{"extproc 26 % worse", CheckFigures{ExtprocRatio: 0.504, TaxRatio: 1.0}, []bool{true, false}, true},
		{"tax 30 % worse", CheckFigures{ExtprocRatio: 0.4, TaxRatio: 1.3}, []bool{false, true}, true},
		{"both worse", CheckFigures{ExtprocRatio: 1, TaxRatio: 2}, []bool{true, true}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := CompareCheck(committed, tt.measured, 0.25)
			var got []bool
			for _, r := range res {
				got = append(got, r.Fail)
			}
			if diff := cmp.Diff(tt.wantFail, got); diff != "" {
				t.Errorf("fails (-want +got)\n%s", diff)
			}
			report, failed := CheckReport(committed, tt.measured, res)
			if failed != tt.wantFailed || strings.Contains(report, "FAIL") != tt.wantFailed {
				t.Errorf("failed = %v, want %v; report:\n%s", failed, tt.wantFailed, report)
			}
		})
	}
}

func TestCheckFileRoundTrip(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "check.json")
	want := CheckFigures{Load: 300, EnvoyMicros: 100, ExtprocMicros: 40, TaxMicros: 90, ExtprocRatio: 0.4, TaxRatio: 0.9}
	if err := WriteCheck(file, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCheck(file)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	if err := WriteCheck(file, CheckFigures{Load: 300}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCheck(file); err == nil {
		t.Error("ReadCheck accepted zero ratios")
	}
}
