//go:build gc && (386 || amd64 || arm || arm64 || loong64 || ppc64 || ppc64le || riscv64 || s390x)

package lanes

// curg returns the address of the calling goroutine's runtime g.
func curg() uintptr
