/* PVH entry of the probe guest: 32-bit protected mode, paging off, EBX = hvm_start_info. */

    .section .note.Xen, "a"
    .balign 4
    .long 4                 /* name size: "Xen\0" */
    .long 4                 /* descriptor size */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long _start

    .text
    .code32
    .globl _start
_start:
    cli
    movl $stack_top, %esp
    pushl %ebx
    call probe_main
halt:
    hlt
    jmp halt

    .bss
    .balign 16
stack:
    .space 16384
stack_top:

    .section .note.GNU-stack, "", @progbits
