package lab

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Firmware is the machine firmware a VM network-boots with.
type Firmware int

const (
	// BIOS is SeaBIOS with QEMU's default NIC option ROM, which is iPXE (ipxe-qemu): its first
	// DHCP already carries user class "iPXE" and client architecture 0.
	BIOS Firmware = iota
	// UEFI is OVMF (EDK II) with its own virtio-net driver and no NIC option ROM: the EDK II PXE
	// client does the first DHCP (client architecture 7, no user class) and loads the network
	// bootstrap program over TFTP.
	UEFI
)

// String returns "bios" or "uefi".
func (f Firmware) String() string {
	switch f {
	case BIOS:
		return "bios"
	case UEFI:
		return "uefi"
	default:
		return fmt.Sprintf("firmware(%d)", int(f))
	}
}

// Firmware files (Debian packages ovmf, seabios, qemu-system-x86).
const (
	qemuBinary = "qemu-system-x86_64"
	ovmfCode   = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	ovmfVars   = "/usr/share/OVMF/OVMF_VARS_4M.fd"
	// Secure Boot: Microsoft's keys enrolled (db holds the UEFI CA that signs shim).
	ovmfCodeSB = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
	ovmfVarsSB = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

// DefaultVMTimeout is the lifetime of a VM when VMOptions.Timeout is 0.
const DefaultVMTimeout = 5 * time.Minute

// serialTail is how much of the serial log WaitSerial prints when it fails.
const serialTail = 3 << 10

// VMOptions configures StartVM. The zero value boots a BIOS machine with a generated MAC.
type VMOptions struct {
	// Firmware is BIOS (default) or UEFI.
	Firmware Firmware
	// MAC is the NIC's address, like "52:54:00:12:34:56". If empty, a unique locally
	// administered address is generated.
	MAC string
	// Timeout is how long the VM may run before it is killed. If 0, DefaultVMTimeout.
	Timeout time.Duration
	// FwCfg are QEMU -fw_cfg items, like "name=opt/org.tianocore/IPv4PXESupport,string=no"
	// (OVMF then offers no IPv4 PXE boot option: its PXE runs over IPv6 only).
	FwCfg []string
	// SecureBoot (UEFI only) runs OVMF with Secure Boot on and Microsoft's keys enrolled, as
	// a shop-bought PC: it runs only images signed by Microsoft's UEFI CA (shim).
	SecureBoot bool
	// SerialInput makes the serial console writable with VM.Type (a
	// QEMU socket chardev whose output is still logged to SerialPath).
	// On BIOS it also turns on SeaBIOS's serial console (etc/sercon-port
	// 0x3f8), which copies the text screen of the BIOS and of option ROMs
	// (iPXE) to the serial port and turns serial input into keystrokes.
	SerialInput bool
	// CACerts (UEFI only) are the DER X.509 CA certificates OVMF trusts
	// for HTTPS Boot, given through fw_cfg etc/edk2/https/cacerts
	// (cacerts.go); none leaves OVMF's list empty.
	CACerts [][]byte
}

// VM is a QEMU machine network-booting on a lab bridge.
type VM struct {
	// MAC is the NIC's MAC address.
	MAC string
	// Tap is the tap device (inside the lab namespace) the NIC is attached to.
	Tap string
	// SerialPath is the file receiving the serial console (COM1).
	SerialPath string
	// SerialSocket is the unix socket VM.Type writes to (SerialInput).
	SerialSocket string
	// Proc is the QEMU process.
	Proc *Proc
	// Started is when QEMU was started.
	Started time.Time

	serialIn net.Conn // VM.Type's connection to SerialSocket
}

var macCounter atomic.Int64

// StartVM boots a machine on n's bridge: a tap device in n.NS() added to the bridge, QEMU
// (TCG only: KVM hangs Linux guests here) with 512 MiB, no disk, one virtio-net-pci NIC with
// opt.MAC as the first boot device, the serial console written to a file, no display, and
// -no-reboot (the guest's reboot or power-off ends QEMU). It skips the test when QEMU or the
// firmware is not installed. The VM is killed by t.Cleanup and after opt.Timeout.
func StartVM(t testing.TB, n *Net, opt VMOptions) *VM {
	t.Helper()
	if _, err := exec.LookPath(qemuBinary); err != nil {
		t.Skipf("lab: needs %s (apt-get install qemu-system-x86 ipxe-qemu seabios ovmf)", qemuBinary)
	}
	code, varsFile := ovmfCode, ovmfVars
	if opt.SecureBoot {
		code, varsFile = ovmfCodeSB, ovmfVarsSB
	}
	if opt.Firmware == UEFI {
		for _, f := range []string{code, varsFile} {
			if _, err := os.Stat(f); err != nil {
				t.Skipf("lab: needs OVMF firmware %s (apt-get install ovmf)", f)
			}
		}
	}
	if opt.MAC == "" {
		opt.MAC = generateMAC()
	}
	if opt.Timeout == 0 {
		opt.Timeout = DefaultVMTimeout
	}
	dir := t.TempDir()
	vm := &VM{MAC: opt.MAC, SerialPath: filepath.Join(dir, "serial.log")}
	vm.Tap = n.addTap(t)

	args := []string{
		"-accel", "tcg",
		"-m", "512",
		"-smp", "1",
		"-display", "none",
		"-monitor", "none",
		"-no-reboot",
		"-netdev", "tap,id=n0,ifname=" + vm.Tap + ",script=no,downscript=no",
	}
	nic := "virtio-net-pci,netdev=n0,mac=" + opt.MAC + ",bootindex=0"
	switch opt.Firmware {
	case BIOS:
		// SeaBIOS; the NIC's default option ROM is iPXE. -boot n: network first.
		args = append(args, "-machine", "pc", "-boot", "n", "-device", nic)
	case UEFI:
		vars := filepath.Join(dir, "OVMF_VARS.fd")
		if err := copyFile(varsFile, vars); err != nil {
			t.Fatalf("lab: %v", err)
		}
		// romfile= drops the NIC's iPXE option ROM, whose EFI driver would do the first DHCP
		// itself (user class iPXE): OVMF's own VirtioNetDxe and PxeBcDxe do it, as on real
		// UEFI machines, and load the network bootstrap program over TFTP.
		machine := "q35"
		if opt.SecureBoot {
			// SMM keeps the variable store (the keys) out of the OS's reach; OVMF's
			// Secure Boot build needs it.
			machine = "q35,smm=on"
			args = append(args, "-global", "driver=cfi.pflash01,property=secure,value=on")
		}
		args = append(args, "-machine", machine, "-device", nic+",romfile=",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+code,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	default:
		t.Fatalf("lab: unknown firmware %v", opt.Firmware)
	}
	if opt.SerialInput {
		vm.SerialSocket = filepath.Join(dir, "serial.sock")
		args = append(args, "-chardev", "socket,id=ser0,path="+vm.SerialSocket+",server=on,wait=off,logfile="+vm.SerialPath,
			"-serial", "chardev:ser0")
		if opt.Firmware == BIOS {
			port := filepath.Join(dir, "sercon-port")
			if err := os.WriteFile(port, []byte{0xf8, 0x03}, 0o644); err != nil { // 0x3f8, little-endian
				t.Fatalf("lab: %v", err)
			}
			args = append(args, "-fw_cfg", "name=etc/sercon-port,file="+port)
		}
	} else {
		args = append(args, "-serial", "file:"+vm.SerialPath)
	}
	if len(opt.CACerts) > 0 {
		opt.FwCfg = append(opt.FwCfg, caCertsFwCfg(t, dir, opt.CACerts))
	}
	for _, c := range opt.FwCfg {
		args = append(args, "-fw_cfg", c)
	}
	vm.Started = time.Now()
	vm.Proc = Start(t, n.NS(), qemuBinary, args...)
	t.Logf("lab: started %s VM %s on %s/%s (pid %d, serial %s)", opt.Firmware, opt.MAC, n.NS(), vm.Tap, vm.Proc.Cmd.Process.Pid, vm.SerialPath)

	// Bound the VM's life even if the test forgets it.
	timer := time.AfterFunc(opt.Timeout, vm.Proc.Stop)
	t.Cleanup(func() { timer.Stop() })
	return vm
}

// Type writes s to the serial console's input (VMOptions.SerialInput),
// as keys typed on a terminal: "\r" is Enter, "\x1b[19~" is F8. The
// connection stays open for the VM's life: QEMU hands the guest's UART
// one byte at a time and drops what is left unread when the writer hangs
// up. It is read too (and discarded): QEMU writes the console to it.
func (vm *VM) Type(t testing.TB, s string) {
	t.Helper()
	if vm.SerialSocket == "" {
		t.Fatal("lab: VM.Type needs VMOptions.SerialInput")
	}
	if vm.serialIn == nil {
		c, err := net.Dial("unix", vm.SerialSocket)
		if err != nil {
			t.Fatalf("lab: serial input: %v", err)
		}
		vm.serialIn = c
		// QEMU now writes the console to this connection too (and to
		// SerialPath only what the connection took): drain it, or the
		// guest's output stalls once the socket buffer is full.
		go io.Copy(io.Discard, c) //nolint:errcheck // ends when c is closed
		t.Cleanup(func() { c.Close() })
	}
	if _, err := vm.serialIn.Write([]byte(s)); err != nil {
		t.Fatalf("lab: serial input: %v", err)
	}
	t.Logf("lab: typed %q on %s's serial console", s, vm.MAC)
}

// Serial returns the serial console output so far.
func (vm *VM) Serial() string {
	b, err := os.ReadFile(vm.SerialPath)
	if err != nil {
		return ""
	}
	return string(b)
}

// WaitSerial polls the serial log every 100 ms until it contains marker. It fails the test,
// printing the last 3 KB of the serial log and QEMU's own output, when timeout passes first or
// when QEMU exits without having printed marker.
func (vm *VM) WaitSerial(t testing.TB, marker string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(vm.Serial(), marker) {
			return
		}
		exited := vm.Proc.Exited()
		if exited && strings.Contains(vm.Serial(), marker) {
			return
		}
		if exited || time.Now().After(deadline) {
			why := fmt.Sprintf("timed out after %v", timeout)
			if exited {
				status := "exit status 0"
				if err := vm.Proc.Err(); err != nil {
					status = err.Error()
				}
				why = fmt.Sprintf("QEMU exited (%s) after %v", status, time.Since(vm.Started).Round(time.Second))
			}
			t.Fatalf("lab: VM %s: %s without %q on the serial console\n--- serial, last %d bytes:\n%s\n--- qemu output:\n%s",
				vm.MAC, why, marker, serialTail, tail(vm.Serial(), serialTail), tail(vm.Proc.Output(), serialTail))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// generateMAC returns a locally administered unicast MAC unique to this process and call.
func generateMAC() string {
	pid := os.Getpid()
	n := macCounter.Add(1)
	return fmt.Sprintf("52:54:%02x:%02x:%02x:%02x", byte(pid>>16), byte(pid>>8), byte(pid), byte(n))
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}
