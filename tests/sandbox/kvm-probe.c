/* kvm-probe: proves that /dev/kvm runs guest code, independently of nbcore.
 *
 * It creates a VM with one page of memory and one vCPU in real mode, runs
 * "mov al, 0x2a; add al, bl; out 0xe9, al; hlt" with BL set from the host,
 * and checks that the port write carries the sum and that the vCPU then
 * halts. A value computed by the guest from host-set state rules out an exit
 * that merely looks right.
 *
 * Exit status: 0 when KVM works, 77 (skip) when /dev/kvm is missing,
 * 1 when KVM is there but does not run the code correctly.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PROBE_PORT 0xe9
#define PROBE_BL 0x15
#define GUEST_BASE 0x1000
#define GUEST_SIZE 0x1000

static const uint8_t probe_code[] = {
    0xb0, 0x2a,       /* mov al, 0x2a */
    0x00, 0xd8,       /* add al, bl */
    0xe6, PROBE_PORT, /* out 0xe9, al */
    0xf4,             /* hlt */
};

static int fail(const char *what)
{
    fprintf(stderr, "kvm-probe: %s: %s\n", what, strerror(errno));
    return 1;
}

static const char *exit_name(uint32_t reason)
{
    switch (reason) {
    case KVM_EXIT_IO: return "I/O";
    case KVM_EXIT_HLT: return "HLT";
    case KVM_EXIT_MMIO: return "MMIO";
    case KVM_EXIT_SHUTDOWN: return "shutdown (triple fault)";
    case KVM_EXIT_FAIL_ENTRY: return "failed entry";
    case KVM_EXIT_INTERNAL_ERROR: return "internal error";
    default: return "other";
    }
}

int main(void)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        if (errno == ENOENT) {
            fprintf(stderr, "kvm-probe: SKIP: no /dev/kvm here "
                            "(run it through tests/sandbox/nb-sandbox)\n");
            return 77;
        }
        return fail("opening /dev/kvm");
    }

    int api = ioctl(kvm, KVM_GET_API_VERSION, 0);
    if (api != KVM_API_VERSION) {
        fprintf(stderr, "kvm-probe: KVM API version %d, expected %d\n",
                api, KVM_API_VERSION);
        return 1;
    }

    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0)
        return fail("KVM_CREATE_VM");

    uint8_t *mem = mmap(NULL, GUEST_SIZE, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return fail("allocating guest memory");
    memcpy(mem, probe_code, sizeof(probe_code));

    struct kvm_userspace_memory_region region = {
        .slot = 0,
        .guest_phys_addr = GUEST_BASE,
        .memory_size = GUEST_SIZE,
        .userspace_addr = (uintptr_t)mem,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
        return fail("KVM_SET_USER_MEMORY_REGION");

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0)
        return fail("KVM_CREATE_VCPU");

    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size < (int)sizeof(struct kvm_run))
        return fail("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE,
                               MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED)
        return fail("mapping the vCPU's run area");

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
        return fail("KVM_GET_SREGS");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
        return fail("KVM_SET_SREGS");

    struct kvm_regs regs = {
        .rip = GUEST_BASE,
        .rbx = PROBE_BL,
        .rflags = 0x2, /* bit 1 is reserved and must be set */
    };
    if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
        return fail("KVM_SET_REGS");

    const uint8_t expected = (uint8_t)(0x2a + PROBE_BL);
    int saw_out = 0;
    /* A correct run needs two entries; a few more tolerate spurious exits
     * (e.g. signals) without looping forever on a broken KVM. */
    for (int entry = 0; entry < 16; entry++) {
        if (ioctl(vcpu, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return fail("KVM_RUN");
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            if (run->io.direction != KVM_EXIT_IO_OUT || run->io.port != PROBE_PORT ||
                run->io.size != 1 || run->io.count != 1) {
                fprintf(stderr, "kvm-probe: unexpected I/O exit: %s port 0x%x size %u count %u\n",
                        run->io.direction == KVM_EXIT_IO_OUT ? "out" : "in",
                        run->io.port, run->io.size, run->io.count);
                return 1;
            }
            uint8_t value = *((uint8_t *)run + run->io.data_offset);
            if (value != expected) {
                fprintf(stderr, "kvm-probe: guest wrote 0x%02x to port 0x%x, expected 0x%02x\n",
                        value, PROBE_PORT, expected);
                return 1;
            }
            saw_out = 1;
            break;
        }
        case KVM_EXIT_HLT:
            if (!saw_out) {
                fprintf(stderr, "kvm-probe: the guest halted without writing to port 0x%x\n",
                        PROBE_PORT);
                return 1;
            }
            printf("kvm-probe: KVM ran guest code: out 0x%x <- 0x%02x, then hlt\n",
                   PROBE_PORT, expected);
            return 0;
        case KVM_EXIT_FAIL_ENTRY:
            fprintf(stderr, "kvm-probe: vCPU entry failed, hardware reason 0x%llx\n",
                    (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
            return 1;
        case KVM_EXIT_INTERNAL_ERROR:
            fprintf(stderr, "kvm-probe: KVM internal error, suberror %u\n",
                    run->internal.suberror);
            return 1;
        default:
            fprintf(stderr, "kvm-probe: unexpected exit %u (%s)\n",
                    run->exit_reason, exit_name(run->exit_reason));
            return 1;
        }
    }
    fprintf(stderr, "kvm-probe: the guest never halted\n");
    return 1;
}
