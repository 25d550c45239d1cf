// Command libcni_driver runs a CNI network configuration list through libcni,
// the library containerd and CRI-O use to run plugins, so that tests drive a
// plugin exactly as those runtimes do.
//
//	libcni_driver -conflist FILE -path DIR[:DIR] -cache DIR -netns PATH \
//	    -id CONTAINERID -ifname IFNAME [-args K=V;K=V] [-capabilities JSON] \
//	    add|check|del|validate|version PLUGIN
//
// -capabilities is the runtime's capability arguments (portMappings, bandwidth,
// ...), which libcni passes as runtimeConfig to the plugins that declare them.
//
// add prints the result as JSON; validate prints the versions the list's
// plugins support; version prints one plugin's VERSION answer. Errors print
// {"error": {"code", "msg", "details"}} on stdout and exit 1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
)

func main() {
	conflist := flag.String("conflist", "", "network configuration list file")
	path := flag.String("path", "", "plugin directories, ':'-separated (CNI_PATH)")
	cache := flag.String("cache", "", "libcni's result cache directory")
	netns := flag.String("netns", "", "network namespace path (CNI_NETNS)")
	id := flag.String("id", "", "container ID (CNI_CONTAINERID)")
	ifname := flag.String("ifname", "eth0", "interface name (CNI_IFNAME)")
	args := flag.String("args", "", "CNI_ARGS, K=V;K=V")
	caps := flag.String("capabilities", "", "capability arguments, a JSON object")
	flag.Parse()
	var capArgs map[string]interface{}
	if *caps != "" {
		if err := json.Unmarshal([]byte(*caps), &capArgs); err != nil {
			fmt.Fprintln(os.Stderr, "-capabilities:", err)
			os.Exit(2)
		}
	}
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: libcni_driver [flags] add|check|del|validate|version [PLUGIN]")
		os.Exit(2)
	}
	out, err := run(flag.Arg(0), flag.Arg(1), *conflist, *path, *cache, &libcni.RuntimeConf{
		ContainerID:    *id,
		NetNS:          *netns,
		IfName:         *ifname,
		Args:           parseArgs(*args),
		CapabilityArgs: capArgs,
	})
	if err != nil {
		report := map[string]interface{}{"code": 0, "msg": err.Error()}
		var cniErr *types.Error
		if errors.As(err, &cniErr) {
			report = map[string]interface{}{"code": cniErr.Code, "msg": cniErr.Msg, "details": cniErr.Details}
		}
		printJSON(map[string]interface{}{"error": report})
		os.Exit(1)
	}
	if out != nil {
		printJSON(out)
	}
}

func run(command, plugin, conflist, path, cache string, rt *libcni.RuntimeConf) (interface{}, error) {
	cni := libcni.NewCNIConfigWithCacheDir(strings.Split(path, ":"), cache, nil)
	ctx := context.Background()
	if command == "version" {
		info, err := cni.GetVersionInfo(ctx, plugin)
		if err != nil {
			return nil, err
		}
		return info.SupportedVersions(), nil
	}
	list, err := libcni.ConfListFromFile(conflist)
	if err != nil {
		return nil, err
	}
	switch command {
	case "add":
		return cni.AddNetworkList(ctx, list, rt)
	case "check":
		return nil, cni.CheckNetworkList(ctx, list, rt)
	case "del":
		return nil, cni.DelNetworkList(ctx, list, rt)
	case "validate":
		return cni.ValidateNetworkList(ctx, list)
	}
	return nil, fmt.Errorf("unknown command %q", command)
}

// parseArgs splits CNI_ARGS the way runtimes pass them to libcni.
func parseArgs(s string) [][2]string {
	var out [][2]string
	for _, pair := range strings.Split(s, ";") {
		if k, v, ok := strings.Cut(pair, "="); ok {
			out = append(out, [2]string{k, v})
		}
	}
	return out
}

func printJSON(v interface{}) {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(string(b))
}
