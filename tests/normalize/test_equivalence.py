"""One check, every spelling: the dialect tests of the catalog's merge.

Written as sqlglot writes its dialect tests (``validate_all(canonical, read={...})``):
each row is one canonical indicator ``(field, op, case-folded value)`` and its
spellings in Sigma, KQL, EQL, ES|QL, SPL (tstats over CIM and raw Windows add-on
searches) and YARA-L. Every spelling must parse and normalize to exactly the
row's indicators on the row's fields (other fields the spelling needs, such as
an event code or a log source, are not compared). ``DISTINCT`` rows are checks
that look alike and must *not* merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from detcat.model import Predicate, leaves
from detcat.normalize import indicator_key, normalize_rule
from detcat.parse import parse_rules

Key = tuple[str, str, str]


def sigma(detection: dict[str, Any], **logsource: str) -> tuple[str, str]:
    """A Sigma rule with one selection (``product`` defaults to windows)."""
    logsource = {"product": "windows", **logsource}
    doc = {
        "title": "t",
        "logsource": logsource,
        "detection": {"sel": detection, "condition": "sel"},
    }
    return "sigma", yaml.safe_dump(doc)


def yaral(events: str) -> tuple[str, str]:
    return "yaral", f"rule t {{ events: {events} condition: $e }}"


def spl(text: str) -> tuple[str, str]:
    return "spl", text


def tstats(datamodel: str, where: str) -> tuple[str, str]:
    return "spl", f"| tstats count from datamodel={datamodel} where {where} by host"


def launch(condition: str) -> tuple[str, str]:
    """A YARA-L process launch (principal is the parent, target the new process)."""
    return yaral(f'$e.metadata.event_type = "PROCESS_LAUNCH" and $e.{condition}')


def kql(text: str) -> tuple[str, str]:
    return "kql", text


def eql(text: str) -> tuple[str, str]:
    return "eql", text


def esql(text: str) -> tuple[str, str]:
    return "esql", "FROM logs-* | WHERE " + text


# Elastic rules name their data by index pattern; a spelling may carry one.
INDEX = {
    "eql@sysmon": ["logs-windows.sysmon_operational-*"],
    "eql@security": ["logs-system.security-*"],
}


def eql_on(index: str, text: str) -> tuple[str, str]:
    return f"eql@{index}", text


SYSMON = 'source="XmlWinEventLog:Microsoft-Windows-Sysmon/Operational"'
SECURITY = 'source="WinEventLog:Security"'  # the classic (non-XML) add-on format
SYSTEM = 'source="WinEventLog:System"'


@dataclass
class Idea:
    name: str
    expected: set[Key]
    spellings: list[tuple[str, str]] = field(default_factory=list)


def indicators(language: str, text: str, selectors: bool = False) -> set[Key]:
    """Indicator keys of the events stages' positive predicates (implied ones too:
    they are what makes ``Image|endswith \\x.exe`` and ``process.name : x.exe`` one
    indicator); event selectors are not indicators unless asked for."""
    lang, _, index = language.partition("@")
    out = set()
    for rule in parse_rules(lang, text, normalize=False):
        if index:
            rule.context["index"] = INDEX[language]
        normalize_rule(rule)
        for stage in rule.stages:
            for lf in leaves(stage.expr):
                p = lf.node
                wanted = selectors or p.kind != "selector"
                if isinstance(p, Predicate) and not lf.negated and wanted:
                    out.add(indicator_key(p))
    return out


CMD = "C:\\\\Windows\\\\System32\\\\cmd.exe"  # as KQL, EQL and SPL strings spell it
RUN_KEY = "\\\\CurrentVersion\\\\Run\\\\Updater"
SCRIPT_BLOCK = "powershell.file.script_block_text"
HASH = "a" * 64
IMPHASH = "b" * 32

IDEAS = [
    Idea("process name", {("process.name", "eq", "anydesk.exe")}, [
        sigma({"Image|endswith": "\\AnyDesk.exe"}, category="process_creation"),
        kql('process.name : "AnyDesk.exe"'),
        eql('process where process.name : "anydesk.exe"'),
        esql('process.name == "AnyDesk.exe"'),
        esql('process.name.caseless == "anydesk.exe"'),
        tstats("Endpoint.Processes", 'Processes.process_name="AnyDesk.exe"'),
        spl(f'{SYSMON} EventCode=1 Image="*\\\\AnyDesk.exe"'),
        spl(f'{SECURITY} EventCode=4688 New_Process_Name="*\\\\AnyDesk.exe"'),
        launch('target.process.file.full_path = /\\\\anydesk\\.exe$/ nocase'),
    ]),
    Idea("process path", {
        ("process.executable", "eq", "c:\\windows\\system32\\cmd.exe"),
        ("process.name", "eq", "cmd.exe"),
    }, [
        sigma({"Image": "C:\\Windows\\System32\\cmd.exe"}, category="process_creation"),
        kql(f'process.executable : "{CMD}"'),
        eql('process where process.executable : "C:\\\\Windows\\\\System32\\\\cmd.exe"'),
        tstats("Endpoint.Processes", f'Processes.process_path="{CMD}"'),
        spl(f'{SECURITY} EventCode=4688 New_Process_Name="C:\\\\Windows\\\\System32\\\\cmd.exe"'),
        eql(f'process where event.code == "4688" and winlog.event_data.NewProcessName : "{CMD}"'),
        launch('target.process.file.full_path = "C:\\\\Windows\\\\System32\\\\cmd.exe" nocase'),
    ]),
    Idea("process path, wildcard drive", {("process.name", "eq", "lsass.exe")}, [
        eql('process where process.executable : "?:\\\\Windows\\\\System32\\\\lsass.exe"'),
        sigma({"Image|endswith": "\\lsass.exe"}, category="process_creation"),
        kql("process.name : lsass.exe"),
    ]),
    Idea("parent process", {("process.parent.name", "eq", "winword.exe")}, [
        sigma({"ParentImage|endswith": "\\WINWORD.EXE"}, category="process_creation"),
        kql('process.parent.name : "WINWORD.EXE"'),
        eql('process where process.parent.name : "winword.exe"'),
        esql('process.parent.name == "WINWORD.EXE"'),
        tstats("Endpoint.Processes", 'Processes.parent_process_name="WINWORD.EXE"'),
        spl(f'{SYSMON} EventCode=1 ParentImage="*\\\\WINWORD.EXE"'),
        spl(f'{SECURITY} EventCode=4688 Creator_Process_Name="*\\\\WINWORD.EXE"'),
        launch('principal.process.file.full_path = /\\\\winword\\.exe$/ nocase'),
    ]),
    Idea("command line", {("process.command_line", "contains", "-encodedcommand")}, [
        sigma({"CommandLine|contains": "-EncodedCommand"}, category="process_creation"),
        kql("process.command_line : *-EncodedCommand*"),
        eql('process where process.command_line : "*-EncodedCommand*"'),
        esql('process.command_line LIKE "*-EncodedCommand*"'),
        tstats("Endpoint.Processes", 'Processes.process="*-EncodedCommand*"'),
        spl(f'{SYSMON} EventCode=1 CommandLine="*-EncodedCommand*"'),
        spl(f'{SECURITY} EventCode=4688 Process_Command_Line="*-EncodedCommand*"'),
        launch('target.process.command_line = /-EncodedCommand/ nocase'),
    ]),
    Idea("parent command line", {("process.parent.command_line", "contains", "-nop")}, [
        sigma({"ParentCommandLine|contains": "-nop"}, category="process_creation"),
        kql("process.parent.command_line : *-nop*"),
        tstats("Endpoint.Processes", 'Processes.parent_process="*-nop*"'),
        launch('principal.process.command_line = /-nop/ nocase'),
    ]),
    Idea("original file name", {("process.pe.original_file_name", "eq", "psexec.c")}, [
        sigma({"OriginalFileName": "psexec.c"}, category="process_creation"),
        kql('process.pe.original_file_name : "psexec.c"'),
        eql('process where process.pe.original_file_name == "psexec.c"'),
        tstats("Endpoint.Processes", 'Processes.original_file_name="psexec.c"'),
        spl(f'{SYSMON} EventCode=1 OriginalFileName="psexec.c"'),
    ]),
    Idea("process hash (Sysmon Hashes split)", {("process.hash.sha256", "eq", HASH)}, [
        sigma({"Hashes|contains": f"SHA256={HASH}"}, category="process_creation"),
        kql(f'process.hash.sha256 : "{HASH}"'),
        eql(f'process where winlog.event_data.Hashes : "*SHA256={HASH}*"'),
        spl(f'{SYSMON} EventCode=1 Hashes="*SHA256={HASH}*"'),
        launch(f'target.process.file.sha256 = "{HASH}"'),
    ]),
    Idea("loaded DLL", {("dll.name", "eq", "dbghelp.dll")}, [
        sigma({"ImageLoaded|endswith": "\\dbghelp.dll"}, category="image_load"),
        kql("dll.name : dbghelp.dll"),
        eql('library where dll.name : "dbghelp.dll"'),
        spl(f'{SYSMON} EventCode=7 ImageLoaded="*\\\\dbghelp.dll"'),
        eql_on("sysmon", 'any where event.code == "7" and winlog.event_data.ImageLoaded : '
               '"?:\\\\Windows\\\\System32\\\\dbghelp.dll"'),
    ]),
    Idea("DLL hash (Sysmon 7 Hashes)", {("dll.pe.imphash", "eq", IMPHASH)}, [
        sigma({"Hashes|contains": f"IMPHASH={IMPHASH}"}, category="image_load"),
        kql(f'dll.pe.imphash : "{IMPHASH}"'),
        spl(f'{SYSMON} EventCode=7 Hashes="*IMPHASH={IMPHASH}*"'),
        eql_on("sysmon", f'any where event.code == "7" and '
               f'winlog.event_data.Hashes : "*IMPHASH={IMPHASH}*"'),
    ]),
    Idea("driver hash (Sysmon 6 Hashes)", {("file.hash.sha256", "eq", HASH)}, [
        sigma({"Hashes|contains": f"SHA256={HASH}"}, category="driver_load"),
        kql(f'file.hash.sha256 : "{HASH}"'),
        spl(f'{SYSMON} EventCode=6 Hashes="*SHA256={HASH}*"'),
    ]),
    Idea("file hash (Sysmon 29 Hashes)", {("file.hash.sha256", "eq", HASH)}, [
        sigma({"Hashes|contains": f"SHA256={HASH}"}, category="file_executable_detected"),
        spl(f'{SYSMON} EventCode=29 Hashes="*SHA256={HASH}*"'),
        yaral(f'$e.target.file.sha256 = "{HASH}"'),
    ]),
    Idea("driver signer (Sysmon 6)", {("file.code_signature.subject_name", "eq", "xmrig ltd")}, [
        spl(f'{SYSMON} EventCode=6 Signature="XMRig Ltd"'),
        kql('file.code_signature.subject_name : "XMRig Ltd"'),
    ]),
    Idea("DNS query", {("dns.question.name", "eq", "evil.example.com")}, [
        sigma({"QueryName": "evil.example.com"}, category="dns_query"),
        kql('dns.question.name : "evil.example.com"'),
        eql('dns where dns.question.name == "evil.example.com"'),
        esql('dns.question.name == "evil.example.com"'),
        tstats("Network_Resolution", 'DNS.query="evil.example.com"'),
        spl(f'{SYSMON} EventCode=22 QueryName="evil.example.com"'),
        yaral('$e.network.dns.questions.name = "evil.example.com"'),
    ]),
    Idea("destination port", {("destination.port", "eq", "3389")}, [
        sigma({"DestinationPort": 3389}, category="network_connection"),
        kql("destination.port : 3389"),
        eql("network where destination.port == 3389"),
        esql("destination.port == 3389"),
        tstats("Network_Traffic", "All_Traffic.dest_port=3389"),
        spl(f"{SYSMON} EventCode=3 DestinationPort=3389"),
        yaral("$e.target.port = 3389"),
    ]),
    Idea("destination IP", {("destination.ip", "eq", "203.0.113.7")}, [
        sigma({"DestinationIp": "203.0.113.7"}, category="network_connection"),
        kql('destination.ip : "203.0.113.7"'),
        eql('network where destination.ip == "203.0.113.7"'),
        tstats("Network_Traffic", 'All_Traffic.dest_ip="203.0.113.7"'),
        yaral('$e.target.ip = "203.0.113.7"'),
    ]),
    Idea("destination CIDR", {("destination.ip", "cidr", "10.0.0.0/8")}, [
        sigma({"DestinationIp|cidr": "10.0.0.0/8"}, category="network_connection"),
        kql('destination.ip : "10.0.0.0/8"'),
        eql('network where cidrMatch(destination.ip, "10.0.0.0/8")'),
        esql('CIDR_MATCH(destination.ip, "10.0.0.0/8")'),
        spl('index=x | where cidrmatch("10.0.0.0/8", dest_ip)'),
        yaral('net.ip_in_range_cidr($e.target.ip, "10.0.0.0/8")'),
    ]),
    Idea("direction", {("network.direction", "eq", "egress")}, [
        sigma({"Initiated": "true"}, category="network_connection"),
        kql("network.direction : (outgoing or egress)"),
        eql('network where network.direction : "outbound"'),
        tstats("Network_Traffic", "All_Traffic.direction=outbound"),
        yaral('$e.network.direction = "OUTBOUND"'),
    ]),
    Idea("source IP of a logon", {("source.ip", "eq", "198.51.100.4")}, [
        sigma({"EventID": 4624, "IpAddress": "198.51.100.4"}, service="security"),
        kql('source.ip : "198.51.100.4"'),
        spl(f'{SECURITY} EventCode=4624 Source_Network_Address="198.51.100.4"'),
        yaral('$e.principal.ip = "198.51.100.4"'),
    ]),
    Idea("registry key path", {("registry.path", "ends_with", "\\currentversion\\run\\updater")}, [
        sigma({"TargetObject|endswith": "\\CurrentVersion\\Run\\Updater"}, category="registry_set"),
        kql("registry.path : *\\\\CurrentVersion\\\\Run\\\\Updater"),
        eql('registry where registry.path : "*\\\\CurrentVersion\\\\Run\\\\Updater"'),
        tstats("Endpoint.Registry", f'Registry.registry_path="*{RUN_KEY}"'),
        spl(f'{SYSMON} EventCode=13 TargetObject="*\\\\CurrentVersion\\\\Run\\\\Updater"'),
        yaral('$e.target.registry.registry_key = /\\\\CurrentVersion\\\\Run\\\\Updater$/ nocase'),
    ]),
    Idea("registry value data", {("registry.data.strings", "contains", "powershell")}, [
        sigma({"Details|contains": "powershell"}, category="registry_set"),
        kql("registry.data.strings : *powershell*"),
        tstats("Endpoint.Registry", 'Registry.registry_value_data="*powershell*"'),
        spl(f'{SYSMON} EventCode=13 Details="*powershell*"'),
        yaral('$e.target.registry.registry_value_data = /powershell/ nocase'),
    ]),
    Idea("file name", {("file.name", "eq", "payload.ps1")}, [
        sigma({"TargetFilename|endswith": "\\payload.ps1"}, category="file_event"),
        kql('file.name : "payload.ps1"'),
        eql('file where file.name : "payload.ps1"'),
        esql('file.name == "payload.ps1"'),
        tstats("Endpoint.Filesystem", 'Filesystem.file_name="payload.ps1"'),
        spl(f'{SYSMON} EventCode=11 TargetFilename="*\\\\payload.ps1"'),
        yaral('$e.target.file.full_path = /\\\\payload\\.ps1$/ nocase'),
    ]),
    Idea("file directory", {("file.path", "starts_with", "c:\\users\\public\\")}, [
        sigma({"TargetFilename|startswith": "C:\\Users\\Public\\"}, category="file_event"),
        kql("file.path : C\\:\\\\Users\\\\Public\\\\*"),
        tstats("Endpoint.Filesystem", 'Filesystem.file_path="C:\\\\Users\\\\Public\\\\*"'),
        yaral('$e.target.file.full_path = /^C:\\\\Users\\\\Public\\\\/ nocase'),
    ]),
    Idea("user", {("user.name", "eq", "svc_backup")}, [
        sigma({"User": "svc_backup"}, category="process_creation"),
        kql("user.name : svc_backup"),
        tstats("Endpoint.Processes", 'Processes.user="svc_backup"'),
        yaral('$e.principal.user.userid = "svc_backup"'),
    ]),
    Idea("account logging on (4624 TargetUserName)", {("user.name", "eq", "administrator")}, [
        sigma({"EventID": 4624, "TargetUserName": "Administrator"}, service="security"),
        eql_on("security", 'authentication where event.code == "4624" and '
               'winlog.event_data.TargetUserName : "Administrator"'),
        spl(f'{SECURITY} EventCode=4624 Target_User_Name="Administrator"'),
        kql('user.name : "Administrator"'),
    ]),
    Idea("Windows event code", {("event.code", "eq", "4688")}, [
        sigma({"EventID": 4688}, service="security"),
        kql('event.code : "4688"'),
        eql("any where winlog.event_id == 4688"),
        esql('event.code == "4688"'),
        spl("index=wineventlog EventCode=4688"),
        yaral('$e.metadata.product_event_type = "4688"'),
    ]),
    Idea("logon type", {("winlog.logon.type", "eq", "remoteinteractive")}, [
        sigma({"EventID": 4624, "LogonType": 10}, service="security"),
        kql('winlog.logon.type : "RemoteInteractive"'),
        eql('authentication where winlog.event_data.LogonType == "10"'),
        spl(f"{SECURITY} EventCode=4624 Logon_Type=10"),
        spl('source="XmlWinEventLog:Security" EventCode=4624 LogonType=10'),
    ]),
    Idea("service installed", {("service.name", "eq", "psexesvc")}, [
        sigma({"EventID": 7045, "ServiceName": "PSEXESVC"}, service="system"),
        kql('service.name : "PSEXESVC"'),
        eql('any where event.code == "7045" and winlog.event_data.ServiceName : "PSEXESVC"'),
        spl(f'{SYSTEM} EventCode=7045 Service_Name="PSEXESVC"'),
        spl('source="XmlWinEventLog:System" EventCode=7045 ServiceName="PSEXESVC"'),
    ]),
    Idea("PowerShell script block", {(SCRIPT_BLOCK, "contains", "invoke-mimikatz")}, [
        sigma({"ScriptBlockText|contains": "Invoke-Mimikatz"}, category="ps_script"),
        kql('powershell.file.script_block_text : "Invoke-Mimikatz"'),
        kql("powershell.file.script_block_text : *Invoke-Mimikatz*"),
        eql('any where powershell.file.script_block_text : "*Invoke-Mimikatz*"'),
        esql('powershell.file.script_block_text LIKE "*Invoke-Mimikatz*"'),
        spl('source="XmlWinEventLog:Microsoft-Windows-PowerShell/Operational" EventCode=4104 '
            'ScriptBlockText="*Invoke-Mimikatz*"'),
    ]),
    Idea("Okta action", {("event.action", "eq", "user.session.start")}, [
        sigma({"eventType": "user.session.start"}, product="okta", service="okta"),
        kql('event.action : "user.session.start"'),
        spl('sourcetype="OktaIM2:log" eventType="user.session.start"'),
        yaral('$e.metadata.product_event_type = "user.session.start"'),
    ]),
    Idea("CloudTrail action", {("event.action", "eq", "consolelogin")}, [
        sigma({"eventName": "ConsoleLogin"}, product="aws", service="cloudtrail"),
        kql('event.action : "ConsoleLogin"'),
        esql('event.action == "ConsoleLogin"'),
        spl('sourcetype="aws:cloudtrail" eventName="ConsoleLogin"'),
        tstats("Change", 'All_Changes.command="ConsoleLogin"'),
        yaral('$e.metadata.product_event_type = "ConsoleLogin"'),
    ]),
    Idea("CIM change action", {("event.type", "eq", "creation")}, [
        tstats("Change", "All_Changes.action=created"),
        kql("event.type : creation"),
    ]),
    Idea("Linux process", {("process.name", "eq", "curl")}, [
        sigma({"Image|endswith": "/curl"}, category="process_creation", product="linux"),
        kql("process.name : curl"),
        eql('process where process.name == "curl"'),
        tstats("Endpoint.Processes", 'Processes.process_name="curl"'),
        launch('target.process.file.full_path = /\\/curl$/'),
    ]),
    Idea("LSASS access (Sysmon 10 TargetImage)", {("Target.process.name", "eq", "lsass.exe")}, [
        sigma({"TargetImage|endswith": "\\lsass.exe"}, category="process_access"),
        eql('process where winlog.event_data.TargetImage : '
            '"?:\\\\WINDOWS\\\\system32\\\\lsass.exe"'),
        kql("Target.process.name : lsass.exe"),
        spl(f'{SYSMON} EventCode=10 TargetImage="*\\\\lsass.exe"'),
        yaral('$e.metadata.event_type = "PROCESS_OPEN" and '
              '$e.target.process.file.full_path = /\\\\lsass\\.exe$/ nocase'),
    ]),
    Idea("user agent", {("user_agent.original", "contains", "python-requests")}, [
        sigma({"c-useragent|contains": "python-requests"}, category="proxy"),
        kql("user_agent.original : *python-requests*"),
        tstats("Web", 'Web.http_user_agent="*python-requests*"'),
        yaral('$e.network.http.user_agent = /python-requests/ nocase'),
    ]),
]  # fmt: skip

CASES = [
    pytest.param(idea, language, text, id=f"{idea.name}|{language}{i}")
    for idea in IDEAS
    for i, (language, text) in enumerate(idea.spellings)
]


@pytest.mark.parametrize(("idea", "language", "text"), CASES)
def test_every_spelling_reads_as_the_canonical_indicator(
    idea: Idea, language: str, text: str
) -> None:
    fields = {f for f, _, _ in idea.expected}
    got = {k for k in indicators(language, text) if k[0] in fields}
    assert got == idea.expected


def test_ideas_cover_every_language() -> None:
    assert len(IDEAS) >= 30
    languages = {lang.partition("@")[0] for idea in IDEAS for lang, _ in idea.spellings}
    assert languages == {"sigma", "kql", "eql", "esql", "spl", "yaral"}


# -- must not merge ------------------------------------------------------------------------

# (why, spelling a, spelling b): the two share no indicator key
DISTINCT = [
    ("a Splunk eventtype is an event selector, not Okta's eventType",
     spl("eventtype=okta_log"), sigma({"eventType": "okta_log"}, product="okta", service="okta")),
    ("a CIM change action is not a CloudTrail API name",
     tstats("Change", "All_Changes.action=created"),
     sigma({"eventName": "Created"}, product="aws", service="cloudtrail")),
    ("in a process launch, principal.process is the parent",
     launch('principal.process.file.full_path = "C:\\\\x.exe"'),
     kql('process.executable : "C:\\\\x.exe"')),
    ("Sysmon 7 Hashes are the DLL's, Sysmon 1 Hashes the process's",
     spl(f'{SYSMON} EventCode=7 Hashes="*SHA256={HASH}*"'),
     spl(f'{SYSMON} EventCode=1 Hashes="*SHA256={HASH}*"')),
    ("Sysmon 6 ImageLoaded is a driver file, Sysmon 7 ImageLoaded a DLL",
     spl(f'{SYSMON} EventCode=6 ImageLoaded="*\\\\x.sys"'),
     spl(f'{SYSMON} EventCode=7 ImageLoaded="*\\\\x.sys"')),
    ("4624 TargetUserName logs on, 4720 TargetUserName is the account created",
     sigma({"EventID": 4624, "TargetUserName": "bob"}, service="security"),
     sigma({"EventID": 4720, "TargetUserName": "bob"}, service="security")),
    ("the process acting on LSASS is not LSASS",
     sigma({"TargetImage|endswith": "\\lsass.exe"}, category="process_access"),
     sigma({"SourceImage|endswith": "\\lsass.exe"}, category="process_access")),
    ("a numeric product_event_type is an event code, a name an action",
     yaral('$e.metadata.product_event_type = "4625"'),
     kql('event.action : "4625"')),
    ("the Risk data model's source is a detection name, not a log source",
     tstats("Risk.All_Risk", 'source="*Icacls*"'),
     spl('source="*Icacls*"')),
    ("Details of Sysmon 13 is registry data, elsewhere it is event data",
     spl(f'{SYSMON} EventCode=13 Details="*x*"'),
     sigma({"Details|contains": "x"}, service="system")),
    ("logon type 3 is not destination port 3",
     sigma({"EventID": 4624, "LogonType": 3}, service="security"),
     sigma({"DestinationPort": 3}, category="network_connection")),
]  # fmt: skip


# What two spellings may share: the log source and event they both name.
CONTEXT = {"log.file.path", "event.code"}


@pytest.mark.parametrize(("why", "a", "b"), DISTINCT, ids=[d[0] for d in DISTINCT])
def test_distinct_checks_do_not_merge(why: str, a: tuple[str, str], b: tuple[str, str]) -> None:
    left, right = indicators(*a, selectors=True), indicators(*b, selectors=True)
    shared = left & right
    assert {f for f, _, _ in shared} <= CONTEXT, why
    assert left - shared and right - shared, why
