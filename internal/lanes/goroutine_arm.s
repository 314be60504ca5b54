//go:build gc

#include "textflag.h"

// func curg() uintptr
TEXT ·curg(SB),NOSPLIT,$0-4
	MOVW g, R0
	MOVW R0, ret+0(FP)
	RET
