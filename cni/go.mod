module netcc.io/cni

go 1.19
