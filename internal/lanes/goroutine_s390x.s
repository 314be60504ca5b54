//go:build gc

#include "textflag.h"

// func curg() uintptr
TEXT ·curg(SB),NOSPLIT,$0-8
	MOVD g, ret+0(FP)
	RET
