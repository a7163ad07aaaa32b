package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"text/template"

	"sigs.k8s.io/yaml"
)

func parse(t *testing.T, s string) values {
	t.Helper()
	v := values{}
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// Helm's coalescing: user values win, maps merge, a user null deletes the default.
func TestCoalesce(t *testing.T) {
	defaults := parse(t, "a: {b: 1, c: 2}\nd: [1]\ne: x\nf: {g: 1}")
	user := parse(t, "a: {c: 3}\nd: [2, 3]\ne: null\nf: 5\nh: null")
	got := coalesce(user, defaults)
	want := parse(t, "a: {b: 1, c: 3}\nd: [2, 3]\nf: 5")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("coalesce = %v, want %v", got, want)
	}
}

// -f files: later ones win, nulls survive until coalescing.
func TestMergeUser(t *testing.T) {
	got := mergeUser(parse(t, "a: {b: 1, c: 2}\nl: [1]"), parse(t, "a: {c: null, d: 4}\nl: [2]"))
	want := parse(t, "a: {b: 1, c: null, d: 4}\nl: [2]")
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mergeUser = %v, want %v", got, want)
	}
}

func TestSetValue(t *testing.T) {
	v := values{}
	for _, s := range []string{"a.b=true", "a.n=42", "a.s=5s", "a.x=null", "top=1.5"} {
		if err := setValue(v, s); err != nil {
			t.Fatal(err)
		}
	}
	want := values{"a": values{"b": true, "n": int64(42), "s": "5s", "x": nil}, "top": "1.5"}
	if !reflect.DeepEqual(v, want) {
		t.Fatalf("setValue = %#v", v)
	}
	if setValue(v, "novalue") == nil {
		t.Fatal("an assignment without = is an error")
	}
}

func execute(t *testing.T, defs, text string, data interface{}) (string, error) {
	t.Helper()
	set := template.New("gotpl").Option("missingkey=zero")
	set.Funcs(funcMap(set))
	template.Must(set.New("defs").Parse(defs))
	if _, err := set.New("main").Parse(text); err != nil {
		return "", err
	}
	var b strings.Builder
	err := set.ExecuteTemplate(&b, "main", data)
	return strings.ReplaceAll(b.String(), "<no value>", ""), err
}

func TestHelmFunctions(t *testing.T) {
	data := values{"Values": values{"name": "relay", "n": 3.0, "m": values{"b": 2.0, "a": "x"}}}
	cases := []struct{ text, want string }{
		{`{{ include "greet" . }}`, "hello relay"},
		{`{{ tpl "{{ .Values.name }}-{{ .Values.n }}" . }}`, "relay-3"},
		{`{{ toYaml .Values.m }}`, "a: x\nb: 2"}, // sorted keys, no trailing newline
		{`{{ (fromYaml "a: 1").a }}`, "1"},
		{`{{ toJson .Values.m }}`, `{"a":"x","b":2}`},
		{`{{ required "need it" .Values.name }}`, "relay"},
		{`[{{ .Values.missing }}]`, "[]"},
	}
	for _, c := range cases {
		got, err := execute(t, `{{ define "greet" }}hello {{ .Values.name }}{{ end }}`, c.text, data)
		if err != nil || got != c.want {
			t.Errorf("%s = %q, %v; want %q", c.text, got, err, c.want)
		}
	}
	if _, err := execute(t, "", `{{ env "HOME" }}`, data); err == nil || !strings.Contains(err.Error(), `function "env" not defined`) {
		t.Errorf("env is removed, as in Helm: %v", err)
	}
}

func TestFailAndRequiredReadLikeHelm(t *testing.T) {
	for _, text := range []string{`{{ fail "no keys here" }}`, `{{ required "no keys here" .Values.missing }}`} {
		_, err := execute(t, "", text, values{"Values": values{}})
		if err == nil {
			t.Fatalf("%s did not fail", text)
		}
		got := execError(err).Error()
		if got != "execution error at (main:1:3): no keys here" {
			t.Errorf("%s: %q", text, got)
		}
	}
	other := errors.New("template: x:1:2: executing \"x\" at <.a.b>: nil pointer evaluating")
	if execError(other) != other {
		t.Error("other errors are left as they are")
	}
}

func TestDocuments(t *testing.T) {
	docs := docSep.Split("a: 1\n---\n# only a comment\n---   \nb: 2\n", -1)
	var kept []string
	for _, d := range docs {
		if meaningful(strings.TrimSpace(d)) {
			kept = append(kept, strings.TrimSpace(d))
		}
	}
	if !reflect.DeepEqual(kept, []string{"a: 1", "b: 2"}) {
		t.Fatalf("documents %q", kept)
	}
}

func TestConditionHolds(t *testing.T) {
	v := parse(t, "sub: {enabled: false}\nother: {enabled: true}")
	if conditionHolds(v, "sub.enabled") || !conditionHolds(v, "other.enabled") || !conditionHolds(v, "missing.enabled") {
		t.Fatal("a condition is false only when its path holds false")
	}
}
