// Command render is the part of `helm template` that flagrelay's chart tests need, built from
// Debian's Go packages because Helm itself is not packaged: Go text/template with Sprig, Helm's
// own functions (include, tpl, required, toYaml, fromYaml, toJson, fromJson), .Files, .Release,
// .Chart, .Capabilities, values merged like Helm (chart defaults, then -f files in order, then
// --set), and file:// dependencies as subcharts (a parent chart that includes flagrelay's
// sidecar templates).
//
//	render [--name RELEASE] [--namespace NS] [-f values.yaml]... [--set a.b=v]...
//	       [--kube-version v1.30.0] [--api-versions group/version]... [--notes] CHART_DIR
//
// It prints every rendered manifest like `helm template` ("---", "# Source: <template>", the
// document), skipping partials (_*.tpl) and dropping empty documents; --notes prints the
// rendered NOTES.txt instead. A template error, a document that is not YAML, or one without
// apiVersion and kind exits 1 with Helm's wording ("execution error at (...)"); usage errors
// exit 2.
//
// Where it follows Helm's source closely: the template set (one set, every chart's templates,
// parsed deepest path first so a parent's defines win), missingkey=zero with "<no value>"
// removed, no env/expandenv, toYaml through sigs.k8s.io/yaml (so keys are sorted and numbers
// are float64, as in Helm), and value coalescing (a null in user values deletes a default).
// Not implemented, because the chart does not use them: lookup, toToml, .Files.AsConfig/
// AsSecrets, --set's list and escaping syntax, .helmignore.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/semver"
	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

type values = map[string]interface{}

// Metadata is Chart.yaml; templates see it as .Chart with Helm's field names.
type Metadata struct {
	APIVersion   string        `json:"apiVersion"`
	Name         string        `json:"name"`
	Version      string        `json:"version"`
	AppVersion   string        `json:"appVersion,omitempty"`
	KubeVersion  string        `json:"kubeVersion,omitempty"`
	Description  string        `json:"description,omitempty"`
	Type         string        `json:"type,omitempty"`
	Home         string        `json:"home,omitempty"`
	Sources      []string      `json:"sources,omitempty"`
	Keywords     []string      `json:"keywords,omitempty"`
	Icon         string        `json:"icon,omitempty"`
	Annotations  values        `json:"annotations,omitempty"`
	Maintainers  []values      `json:"maintainers,omitempty"`
	Dependencies []*Dependency `json:"dependencies,omitempty"`
}

type Dependency struct {
	Name       string `json:"name"`
	Version    string `json:"version,omitempty"`
	Repository string `json:"repository,omitempty"`
	Condition  string `json:"condition,omitempty"`
	Alias      string `json:"alias,omitempty"`
}

type chart struct {
	meta      *Metadata
	dir       string
	defaults  values
	templates map[string]string // file path relative to the chart dir -> text
	files     Files
	subcharts []*chart // in Chart.yaml order; name = alias or chart name
	as        string   // the name the parent knows it by
}

// Files is .Files: the chart's files outside templates/ and charts/.
type Files map[string][]byte

func (f Files) Get(name string) string      { return string(f[name]) }
func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Lines(name string) []string {
	if f[name] == nil {
		return []string{}
	}
	return strings.Split(strings.TrimRight(string(f[name]), "\n"), "\n")
}
func (f Files) Glob(pattern string) Files {
	out := Files{}
	for name, data := range f {
		if ok, _ := path.Match(pattern, name); ok {
			out[name] = data
		}
	}
	return out
}

// APIVersions is .Capabilities.APIVersions.
type APIVersions []string

func (a APIVersions) Has(v string) bool {
	for _, x := range a {
		if x == v {
			return true
		}
	}
	return false
}

func readYAMLFile(p string, out interface{}) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: %v", p, err)
	}
	return nil
}

func loadChart(dir string) (*chart, error) {
	c := &chart{dir: dir, templates: map[string]string{}, files: Files{}, defaults: values{}}
	c.meta = &Metadata{}
	if err := readYAMLFile(filepath.Join(dir, "Chart.yaml"), c.meta); err != nil {
		return nil, err
	}
	// Helm's own checks on Chart.yaml (chart.Metadata.Validate).
	if c.meta.APIVersion != "v2" {
		return nil, fmt.Errorf("%s/Chart.yaml: apiVersion must be v2 for Helm 3, got %q", dir, c.meta.APIVersion)
	}
	if c.meta.Name == "" {
		return nil, fmt.Errorf("%s/Chart.yaml: name is required", dir)
	}
	if _, err := semver.StrictNewVersion(c.meta.Version); err != nil {
		return nil, fmt.Errorf("%s/Chart.yaml: version %q is not SemVer 2: %v", dir, c.meta.Version, err)
	}
	if c.meta.Type != "" && c.meta.Type != "application" && c.meta.Type != "library" {
		return nil, fmt.Errorf("%s/Chart.yaml: type must be application or library", dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "values.yaml")); err == nil {
		if err := readYAMLFile(filepath.Join(dir, "values.yaml"), &c.defaults); err != nil {
			return nil, err
		}
		if c.defaults == nil {
			c.defaults = values{}
		}
	}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			if rel == "charts" {
				return filepath.SkipDir
			}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			c.templates[rel] = string(data)
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json":
		default:
			c.files[rel] = data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, d := range c.meta.Dependencies {
		// What `helm dependency build` would fetch into charts/: only local (file://) charts here.
		if !strings.HasPrefix(d.Repository, "file://") {
			return nil, fmt.Errorf("%s: dependency %s: only file:// repositories are supported", dir, d.Name)
		}
		sub, err := loadChart(filepath.Join(dir, strings.TrimPrefix(d.Repository, "file://")))
		if err != nil {
			return nil, err
		}
		if sub.meta.Name != d.Name {
			return nil, fmt.Errorf("%s: dependency %s: the chart at %s is named %s", dir, d.Name, d.Repository, sub.meta.Name)
		}
		if d.Version != "" {
			cons, err := semver.NewConstraint(d.Version)
			if err != nil {
				return nil, fmt.Errorf("%s: dependency %s: version %q: %v", dir, d.Name, d.Version, err)
			}
			v, _ := semver.NewVersion(sub.meta.Version)
			if !cons.Check(v) {
				return nil, fmt.Errorf("%s: dependency %s: version %s does not satisfy %q", dir, d.Name, sub.meta.Version, d.Version)
			}
		}
		sub.as = d.Name
		if d.Alias != "" {
			sub.as = d.Alias
		}
		c.subcharts = append(c.subcharts, sub)
	}
	return c, nil
}

// coalesce fills dst (user values, modified in place) from src (chart defaults) the way Helm's
// chartutil.CoalesceTables does: user values win, maps merge, and a user null deletes the key.
func coalesce(dst, src values) values {
	if dst == nil {
		dst = values{}
	}
	for k, sv := range src {
		dv, present := dst[k]
		if !present {
			dst[k] = copyValue(sv)
			continue
		}
		if dv == nil {
			delete(dst, k)
			continue
		}
		dm, dIsMap := dv.(values)
		sm, sIsMap := sv.(values)
		if dIsMap && sIsMap {
			dst[k] = coalesce(dm, sm)
		}
	}
	// Nulls the defaults did not have are dropped as well.
	for k, v := range dst {
		if v == nil {
			delete(dst, k)
		}
	}
	return dst
}

func copyValue(v interface{}) interface{} {
	data, _ := json.Marshal(v)
	var out interface{}
	_ = json.Unmarshal(data, &out)
	return out
}

// mergeUser merges one -f file over the previous ones (Helm's cli/values mergeMaps): later
// files win, maps merge, nulls are kept so that coalesce deletes the defaults they name.
func mergeUser(base, over values) values {
	for k, v := range over {
		if om, ok := v.(values); ok {
			if bm, ok := base[k].(values); ok {
				base[k] = mergeUser(bm, om)
				continue
			}
		}
		base[k] = v
	}
	return base
}

// setValue applies one --set a.b.c=value: true/false, null and integers are typed as Helm's
// strvals types them, anything else is a string.
func setValue(vals values, assignment string) error {
	eq := strings.IndexByte(assignment, '=')
	if eq <= 0 {
		return fmt.Errorf("--set %q: want key=value", assignment)
	}
	keys := strings.Split(assignment[:eq], ".")
	raw := assignment[eq+1:]
	var v interface{} = raw
	switch {
	case raw == "true":
		v = true
	case raw == "false":
		v = false
	case raw == "null":
		v = nil
	default:
		if n, err := strconv.ParseInt(raw, 10, 64); err == nil {
			v = n
		}
	}
	m := vals
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(values)
		if !ok {
			next = values{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
	return nil
}

// scoped is one chart's render input: its templates and the top-level object they see.
type scoped struct {
	chart  *chart
	prefix string // template name prefix: "flagrelay" or "parent/charts/flagrelay"
	top    values
}

// collect resolves each chart's values (Helm's CoalesceValues: a subchart sees
// parentValues[alias] coalesced with its own defaults, plus global) and lists the charts.
func collect(c *chart, prefix string, vals values, common values, out *[]scoped) error {
	vals = coalesce(vals, c.defaults)
	global, _ := vals["global"].(values)
	for _, sub := range c.subcharts {
		subVals, ok := vals[sub.as].(values)
		if !ok {
			subVals = values{}
		}
		subVals = coalesce(subVals, sub.defaults)
		if global != nil {
			g, _ := subVals["global"].(values)
			subVals["global"] = coalesce(g, global)
		}
		vals[sub.as] = subVals
	}
	top := values{}
	for k, v := range common {
		top[k] = v
	}
	top["Values"] = vals
	top["Chart"] = c.meta
	top["Files"] = c.files
	*out = append(*out, scoped{chart: c, prefix: prefix, top: top})
	for _, d := range c.meta.Dependencies {
		if d.Condition != "" && !conditionHolds(vals, d.Condition) {
			continue
		}
		name := d.Name
		if d.Alias != "" {
			name = d.Alias
		}
		for _, sub := range c.subcharts {
			if sub.as == name {
				if err := collect(sub, prefix+"/charts/"+name, vals[name].(values), common, out); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// conditionHolds evaluates a dependency condition ("flagrelay.enabled"): false only when the
// path holds the boolean false, as Helm treats a missing path as no condition.
func conditionHolds(vals values, cond string) bool {
	var cur interface{} = vals
	for _, k := range strings.Split(cond, ".") {
		m, ok := cur.(values)
		if !ok {
			return true
		}
		cur = m[k]
	}
	b, ok := cur.(bool)
	return !ok || b
}

// execError rewrites a template execution error into Helm's form for fail and required:
// "execution error at (flagrelay/templates/x.yaml:3:4): message".
var execErrRe = regexp.MustCompile(`^template: (.*?):(\d+):(\d+): executing "(.*?)" at <(.*?)>: error calling (fail|required): (.*)$`)

func execError(err error) error {
	if m := execErrRe.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("execution error at (%s:%s:%s): %s", m[1], m[2], m[3], m[7])
	}
	return err
}

func funcMap(set *template.Template) template.FuncMap {
	fm := sprig.TxtFuncMap()
	// Helm removes these so that a chart's output cannot depend on the machine that renders it.
	delete(fm, "env")
	delete(fm, "expandenv")
	fm["toYaml"] = func(v interface{}) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	fm["fromYaml"] = func(s string) values {
		m := values{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	fm["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	fm["fromJson"] = func(s string) values {
		m := values{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	fm["required"] = func(warn string, v interface{}) (interface{}, error) {
		if v == nil {
			return v, errors.New(warn)
		}
		if s, ok := v.(string); ok && s == "" {
			return v, errors.New(warn)
		}
		return v, nil
	}
	depth := map[string]int{}
	fm["include"] = func(name string, data interface{}) (string, error) {
		if depth[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		depth[name]++
		defer func() { depth[name]-- }()
		var buf strings.Builder
		err := set.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	fm["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := set.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %v", text, err)
		}
		var buf strings.Builder
		if err := t.Execute(&buf, data); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	return fm
}

// Helm's releaseutil.SplitManifests separator.
var docSep = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

// meaningful is false for a document of blank lines and comments only.
func meaningful(doc string) bool {
	for _, line := range strings.Split(doc, "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return true
		}
	}
	return false
}

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	name := fs.String("name", "release-name", "release name")
	namespace := fs.String("namespace", "default", "release namespace")
	kubeVersion := fs.String("kube-version", "v1.30.0", "Kubernetes version for .Capabilities")
	notes := fs.Bool("notes", false, "print the rendered NOTES.txt instead of the manifests")
	var valueFiles, sets, apiVersions multi
	fs.Var(&valueFiles, "f", "values file (repeatable, later ones win)")
	fs.Var(&sets, "set", "a.b.c=value (repeatable, after the files)")
	fs.Var(&apiVersions, "api-versions", "extra API version for .Capabilities.APIVersions (repeatable)")
	// Flags may follow the chart, as with helm.
	var positional []string
	for args := os.Args[1:]; ; {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 1 {
		fmt.Fprintln(os.Stderr, "usage: render [--name R] [--namespace NS] [-f values.yaml]... [--set a.b=v]... [--notes] CHART_DIR")
		return 2
	}
	if err := render(positional[0], *name, *namespace, *kubeVersion, *notes, valueFiles, sets, apiVersions); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %v\n", err)
		return 1
	}
	return 0
}

func render(dir, name, namespace, kubeVersion string, notes bool, valueFiles, sets, extraAPIs []string) error {
	root, err := loadChart(dir)
	if err != nil {
		return err
	}
	user := values{}
	for _, f := range valueFiles {
		v := values{}
		if err := readYAMLFile(f, &v); err != nil {
			return err
		}
		user = mergeUser(user, v)
	}
	for _, s := range sets {
		if err := setValue(user, s); err != nil {
			return err
		}
	}
	kv, err := semver.NewVersion(kubeVersion)
	if err != nil {
		return fmt.Errorf("--kube-version %q: %v", kubeVersion, err)
	}
	if root.meta.KubeVersion != "" {
		cons, err := semver.NewConstraint(root.meta.KubeVersion)
		if err != nil {
			return fmt.Errorf("Chart.yaml kubeVersion %q: %v", root.meta.KubeVersion, err)
		}
		if !cons.Check(kv) {
			return fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", root.meta.KubeVersion, kubeVersion)
		}
	}
	apis := APIVersions{"v1", "apps/v1", "autoscaling/v1", "autoscaling/v2", "policy/v1", "batch/v1", "networking.k8s.io/v1"}
	apis = append(apis, extraAPIs...)
	common := values{
		"Release": map[string]interface{}{
			"Name": name, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": map[string]interface{}{
			"KubeVersion": map[string]interface{}{
				"Version": "v" + kv.String(), "GitVersion": "v" + kv.String(),
				"Major": strconv.FormatUint(kv.Major(), 10), "Minor": strconv.FormatUint(kv.Minor(), 10),
			},
			"APIVersions": apis,
			"HelmVersion": map[string]interface{}{"Version": "v3.14.0"},
		},
	}
	var charts []scoped
	if err := collect(root, root.meta.Name, user, common, &charts); err != nil {
		return err
	}

	type tmpl struct {
		name string
		top  values
	}
	var all []tmpl
	for _, sc := range charts {
		for rel := range sc.chart.templates {
			all = append(all, tmpl{sc.prefix + "/" + rel, sc.top})
		}
	}
	// Helm's sortTemplates: deepest path first, equal depths in reverse name order.
	sort.Slice(all, func(i, j int) bool {
		a, b := all[i].name, all[j].name
		ca, cb := strings.Count(a, "/"), strings.Count(b, "/")
		if ca != cb {
			return ca > cb
		}
		return a > b
	})
	set := template.New("gotpl").Option("missingkey=zero")
	set.Funcs(funcMap(set))
	texts := map[string]string{}
	for _, sc := range charts {
		for rel, text := range sc.chart.templates {
			texts[sc.prefix+"/"+rel] = text
		}
	}
	for _, t := range all {
		if _, err := set.New(t.name).Parse(texts[t.name]); err != nil {
			return fmt.Errorf("parse error in %s: %v", t.name, err)
		}
	}

	var out bytes.Buffer
	names := make([]string, 0, len(all))
	for _, t := range all {
		names = append(names, t.name)
	}
	sort.Strings(names)
	byName := map[string]values{}
	for _, t := range all {
		byName[t.name] = t.top
	}
	for _, n := range names {
		base := path.Base(n)
		if strings.HasPrefix(base, "_") {
			continue
		}
		isNotes := base == "NOTES.txt"
		// Subcharts' NOTES are not shown by Helm.
		if isNotes && n != root.meta.Name+"/templates/NOTES.txt" {
			continue
		}
		top := values{}
		for k, v := range byName[n] {
			top[k] = v
		}
		top["Template"] = map[string]interface{}{"Name": n, "BasePath": path.Dir(n)}
		var buf strings.Builder
		if err := set.ExecuteTemplate(&buf, n, top); err != nil {
			return execError(err)
		}
		text := strings.ReplaceAll(buf.String(), "<no value>", "")
		if isNotes {
			if notes {
				out.WriteString(text)
			}
			continue
		}
		if notes {
			continue
		}
		for _, doc := range docSep.Split(text, -1) {
			doc = strings.TrimSpace(doc)
			if !meaningful(doc) {
				continue
			}
			var obj struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				return fmt.Errorf("YAML parse error on %s: %v", n, err)
			}
			if obj.APIVersion == "" || obj.Kind == "" {
				return fmt.Errorf("%s: a document without apiVersion or kind:\n%s", n, doc)
			}
			fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", n, doc)
		}
	}
	_, err = os.Stdout.Write(out.Bytes())
	return err
}
