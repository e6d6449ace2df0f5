// spindex on Azure: AI Search, Blob state, Key Vault, Log Analytics and three scheduled Container Apps Jobs.
// Deploy: az deployment group create -g <rg> -f infra/bicep/main.bicep -p @infra/bicep/main.parameters.json
// Every parameter is described in docs/deploy.md.

targetScope = 'resourceGroup'

// ---- general ----

@description('Azure region of every resource (except the Azure OpenAI account, see openAILocation).')
param location string = resourceGroup().location

@description('Short lower-case name (letters and digits, 3-12) that every resource name is built from.')
@minLength(3)
@maxLength(12)
param baseName string = 'spindex'

@description('Tags applied to every resource, in addition to application=spindex.')
param tags object = {}

@description('Object id of an operator (user, group or service principal) granted Key Vault Certificates Officer to upload the Graph certificate; empty for none.')
param operatorPrincipalId string = ''

@description('Kind of principal operatorPrincipalId is: User, Group or ServicePrincipal.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

@description('Turn on Key Vault purge protection (irreversible; a deleted vault then blocks its name for 90 days). Turn off for throw-away environments.')
param keyVaultPurgeProtection bool = true

// ---- container image and jobs ----

@description('Container image of spindex, e.g. myregistry.azurecr.io/spindex:0.1.0.')
param containerImage string

@description('Name of an Azure Container Registry the image is pulled from with the managed identity (granted AcrPull); empty for a public image.')
param containerRegistryName string = ''

@description('Resource group of containerRegistryName.')
param containerRegistryResourceGroup string = resourceGroup().name

@description('Create the three jobs. Set false on the first deployment, upload the Graph certificate, then deploy again with true.')
param deployJobs bool = true

@description('Schedule of `python -m jobs delta` (cron, UTC).')
param deltaSchedule string = '*/15 * * * *'

@description('Schedule of `python -m jobs acl` (cron, UTC); hourly, off the quarter hours of the delta job.')
param aclSchedule string = '7 * * * *'

@description('Schedule of `python -m jobs full` (cron, UTC); nightly.')
param fullSchedule string = '37 2 * * *'

@description('Seconds a delta run may take before it is stopped.')
@minValue(60)
param deltaTimeoutSeconds int = 1800

@description('Seconds an ACL refresh may take before it is stopped.')
@minValue(60)
param aclTimeoutSeconds int = 3600

@description('Seconds a full run may take before it is stopped.')
@minValue(60)
param fullTimeoutSeconds int = 14400

@description('Times a failed run is retried within one execution.')
@minValue(0)
@maxValue(10)
param jobRetryLimit int = 1

@description('CPU cores per job replica, as a decimal string (Consumption profile: 0.25 to 4).')
param jobCpu string = '1.0'

@description('Memory per job replica (Consumption profile: twice the cores in Gi, e.g. 2Gi for 1.0).')
param jobMemory string = '2Gi'

// ---- Microsoft Graph and SharePoint ----

@description('How the jobs sign in to Graph and SharePoint: `certificate` (an app registration, certificate in Key Vault) or `managed_identity` (the jobs\' identity).')
@allowed([
  'certificate'
  'managed_identity'
])
param graphAuth string = 'certificate'

@description('Entra tenant id of the SharePoint tenant.')
param graphTenantId string = subscription().tenantId

@description('Application (client) id of the app registration, for graphAuth=certificate; ignored for managed_identity.')
param graphClientId string = ''

@description('Name of the Key Vault certificate (and its backing secret) holding the Graph certificate, PEM content type.')
param graphCertificateName string = 'spindex-graph'

@description('Sites to sync, as Graph site ids or hostname:/sites/path; empty means every site (needs Sites.Read.All).')
param sharePointSites array = []

// ---- Azure AI Search ----

@description('Pricing tier of the search service (not free: it has no semantic ranker).')
@allowed([
  'basic'
  'standard'
  'standard2'
  'standard3'
  'storage_optimized_l1'
  'storage_optimized_l2'
])
param searchSku string = 'basic'

@description('Semantic ranker plan: free (monthly allowance) or standard (per query).')
@allowed([
  'free'
  'standard'
])
param semanticSearch string = 'free'

@description('Replicas of the search service.')
@minValue(1)
@maxValue(12)
param searchReplicaCount int = 1

@description('Partitions of the search service.')
@allowed([
  1
  2
  3
  4
  6
  12
])
param searchPartitionCount int = 1

@description('Alias readers query; physical indexes are <alias>-<version>.')
param indexAlias string = 'spindex'

// ---- state storage and logs ----

@description('Replication of the storage account.')
@allowed([
  'Standard_LRS'
  'Standard_ZRS'
  'Standard_GRS'
  'Standard_RAGRS'
])
param storageSku string = 'Standard_LRS'

@description('Days after which staged blobs are deleted.')
@minValue(1)
param stagingRetentionDays int = 7

@description('Days of log retention in Log Analytics.')
@minValue(30)
@maxValue(730)
param logRetentionDays int = 30

// ---- embeddings ----

@description('Deploy an Azure OpenAI account with the embedding deployment; false to use existingOpenAIEndpoint.')
param deployOpenAI bool = true

@description('Region of the Azure OpenAI account (embedding models are not offered everywhere).')
param openAILocation string = location

@description('Embedding model (SPINDEX_EMBEDDING__MODEL).')
param embeddingModel string = 'text-embedding-3-small'

@description('Version of the embedding model, when deployOpenAI is true.')
param embeddingModelVersion string = '1'

@description('Name of the embedding deployment (SPINDEX_EMBEDDING__DEPLOYMENT), new or existing.')
param embeddingDeploymentName string = 'text-embedding-3-small'

@description('Deployment type of the embedding deployment, when deployOpenAI is true.')
@allowed([
  'Standard'
  'GlobalStandard'
])
param embeddingDeploymentSku string = 'Standard'

@description('Capacity of the embedding deployment in thousands of tokens per minute, when deployOpenAI is true.')
@minValue(1)
param embeddingCapacity int = 120

@description('Vector size (SPINDEX_EMBEDDING__DIMENSIONS); 0 takes the size of a known model.')
@minValue(0)
@maxValue(4096)
param embeddingDimensions int = 0

@description('Endpoint of an existing Azure OpenAI account, e.g. https://<name>.openai.azure.com/, when deployOpenAI is false.')
param existingOpenAIEndpoint string = ''

@description('Name of that existing account, to grant the identity Cognitive Services OpenAI User on it; empty to grant it yourself.')
param existingOpenAIAccountName string = ''

@description('Resource group of existingOpenAIAccountName.')
param existingOpenAIResourceGroup string = resourceGroup().name

// ---- names ----

var base = toLower(baseName)
var suffix = uniqueString(subscription().id, resourceGroup().id, base)
var allTags = union({ application: 'spindex' }, tags)
var names = {
  identity: 'id-${base}'
  workspace: 'log-${base}'
  environment: 'cae-${base}'
  search: 'srch-${base}-${suffix}'
  storage: take('st${replace(base, '-', '')}${suffix}', 24)
  keyVault: take('kv-${base}-${suffix}', 24)
  openAI: 'oai-${base}-${suffix}'
}
var jobNameOf = {
  delta: '${base}-delta'
  acl: '${base}-acl'
  full: '${base}-full'
}
var stateContainerName = 'spindex-state'
var stagingContainerName = 'spindex-staging'
var certificateMountPath = '/mnt/secrets'
var certificateFileName = 'graph-certificate.pem'
var registryServer = empty(containerRegistryName) ? '' : '${containerRegistryName}${environment().suffixes.acrLoginServer}'

// ---- resources ----

module identity 'modules/identity.bicep' = {
  name: '${base}-identity'
  params: {
    location: location
    name: names.identity
    tags: allTags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: '${base}-monitoring'
  params: {
    location: location
    name: names.workspace
    retentionInDays: logRetentionDays
    tags: allTags
  }
}

module containerEnvironment 'modules/environment.bicep' = {
  name: '${base}-environment'
  params: {
    location: location
    name: names.environment
    logAnalyticsWorkspaceName: monitoring.outputs.name
    tags: allTags
  }
}

module search 'modules/search.bicep' = {
  name: '${base}-search'
  params: {
    location: location
    name: names.search
    sku: searchSku
    semanticSearch: semanticSearch
    replicaCount: searchReplicaCount
    partitionCount: searchPartitionCount
    principalId: identity.outputs.principalId
    tags: allTags
  }
}

module storage 'modules/storage.bicep' = {
  name: '${base}-storage'
  params: {
    location: location
    name: names.storage
    skuName: storageSku
    stateContainerName: stateContainerName
    stagingContainerName: stagingContainerName
    stagingRetentionDays: stagingRetentionDays
    principalId: identity.outputs.principalId
    tags: allTags
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: '${base}-keyvault'
  params: {
    location: location
    name: names.keyVault
    principalId: identity.outputs.principalId
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
    purgeProtection: keyVaultPurgeProtection
    tags: allTags
  }
}

module openAI 'modules/openai.bicep' = if (deployOpenAI) {
  name: '${base}-openai'
  params: {
    location: openAILocation
    name: names.openAI
    deploymentName: embeddingDeploymentName
    model: embeddingModel
    modelVersion: embeddingModelVersion
    deploymentSku: embeddingDeploymentSku
    capacity: embeddingCapacity
    principalId: identity.outputs.principalId
    tags: allTags
  }
}

module existingOpenAIAccess 'modules/openai-access.bicep' = if (!deployOpenAI && !empty(existingOpenAIAccountName)) {
  name: '${base}-openai-access'
  scope: resourceGroup(existingOpenAIResourceGroup)
  params: {
    accountName: existingOpenAIAccountName
    principalId: identity.outputs.principalId
  }
}

module registryAccess 'modules/registry-access.bicep' = if (!empty(containerRegistryName)) {
  name: '${base}-registry-access'
  scope: resourceGroup(containerRegistryResourceGroup)
  params: {
    registryName: containerRegistryName
    principalId: identity.outputs.principalId
  }
}

// ---- the jobs' configuration: spindex Settings as environment variables ----

var openAIEndpoint = deployOpenAI ? openAI.outputs.endpoint : existingOpenAIEndpoint
var certificateSecretUrl = graphAuth == 'certificate' ? '${keyVault.outputs.vaultUri}secrets/${graphCertificateName}' : ''
var commonEnv = [
  {
    name: 'SPINDEX_GRAPH__AUTH'
    value: graphAuth
  }
  {
    name: 'SPINDEX_GRAPH__TENANT_ID'
    value: graphTenantId
  }
  {
    // managed_identity signs in as the jobs' identity, so its client id selects it.
    name: 'SPINDEX_GRAPH__CLIENT_ID'
    value: graphAuth == 'certificate' ? graphClientId : identity.outputs.clientId
  }
  {
    name: 'SPINDEX_INDEX__BACKEND'
    value: 'azure'
  }
  {
    name: 'SPINDEX_INDEX__ENDPOINT'
    value: search.outputs.endpoint
  }
  {
    name: 'SPINDEX_INDEX__ALIAS'
    value: indexAlias
  }
  {
    name: 'SPINDEX_STATE__BACKEND'
    value: 'blob'
  }
  {
    name: 'SPINDEX_STATE__BLOB_ACCOUNT_URL'
    value: storage.outputs.blobEndpoint
  }
  {
    name: 'SPINDEX_STATE__BLOB_CONTAINER'
    value: storage.outputs.stateContainerName
  }
  {
    name: 'SPINDEX_EMBEDDING__PROVIDER'
    value: 'azure_openai'
  }
  {
    name: 'SPINDEX_EMBEDDING__ENDPOINT'
    value: openAIEndpoint
  }
  {
    name: 'SPINDEX_EMBEDDING__DEPLOYMENT'
    value: embeddingDeploymentName
  }
  {
    name: 'SPINDEX_EMBEDDING__MODEL'
    value: embeddingModel
  }
  {
    // azure-identity's DefaultAzureCredential picks the user-assigned identity by this id.
    name: 'AZURE_CLIENT_ID'
    value: identity.outputs.clientId
  }
]
var certificateEnv = graphAuth == 'certificate' ? [
  {
    name: 'SPINDEX_GRAPH__CERTIFICATE_PATH'
    value: '${certificateMountPath}/${certificateFileName}'
  }
] : []
var sitesEnv = empty(sharePointSites) ? [] : [
  {
    name: 'SPINDEX_GRAPH__SITES'
    value: string(sharePointSites)
  }
]
var dimensionsEnv = embeddingDimensions == 0 ? [] : [
  {
    name: 'SPINDEX_EMBEDDING__DIMENSIONS'
    value: string(embeddingDimensions)
  }
]
var jobEnv = concat(commonEnv, certificateEnv, sitesEnv, dimensionsEnv)

module deltaJob 'modules/job.bicep' = if (deployJobs) {
  name: '${base}-job-delta'
  params: {
    location: location
    name: jobNameOf.delta
    mode: 'delta'
    cronExpression: deltaSchedule
    replicaTimeout: deltaTimeoutSeconds
    replicaRetryLimit: jobRetryLimit
    environmentId: containerEnvironment.outputs.id
    identityId: identity.outputs.id
    image: containerImage
    registryServer: registryServer
    env: jobEnv
    certificateSecretUrl: certificateSecretUrl
    certificateMountPath: certificateMountPath
    certificateFileName: certificateFileName
    cpu: jobCpu
    memory: jobMemory
    tags: allTags
  }
  dependsOn: [
    registryAccess
  ]
}

module aclJob 'modules/job.bicep' = if (deployJobs) {
  name: '${base}-job-acl'
  params: {
    location: location
    name: jobNameOf.acl
    mode: 'acl'
    cronExpression: aclSchedule
    replicaTimeout: aclTimeoutSeconds
    replicaRetryLimit: jobRetryLimit
    environmentId: containerEnvironment.outputs.id
    identityId: identity.outputs.id
    image: containerImage
    registryServer: registryServer
    env: jobEnv
    certificateSecretUrl: certificateSecretUrl
    certificateMountPath: certificateMountPath
    certificateFileName: certificateFileName
    cpu: jobCpu
    memory: jobMemory
    tags: allTags
  }
  dependsOn: [
    registryAccess
  ]
}

module fullJob 'modules/job.bicep' = if (deployJobs) {
  name: '${base}-job-full'
  params: {
    location: location
    name: jobNameOf.full
    mode: 'full'
    cronExpression: fullSchedule
    replicaTimeout: fullTimeoutSeconds
    replicaRetryLimit: jobRetryLimit
    environmentId: containerEnvironment.outputs.id
    identityId: identity.outputs.id
    image: containerImage
    registryServer: registryServer
    env: jobEnv
    certificateSecretUrl: certificateSecretUrl
    certificateMountPath: certificateMountPath
    certificateFileName: certificateFileName
    cpu: jobCpu
    memory: jobMemory
    tags: allTags
  }
  dependsOn: [
    registryAccess
  ]
}

// ---- outputs ----

@description('Azure AI Search endpoint (SPINDEX_INDEX__ENDPOINT).')
output searchEndpoint string = search.outputs.endpoint

@description('Name of the search service.')
output searchServiceName string = search.outputs.name

@description('Blob endpoint of the state storage account (SPINDEX_STATE__BLOB_ACCOUNT_URL).')
output storageBlobUrl string = storage.outputs.blobEndpoint

@description('Name of the state storage account.')
output storageAccountName string = storage.outputs.name

@description('Client id of the jobs\' managed identity (AZURE_CLIENT_ID).')
output identityClientId string = identity.outputs.clientId

@description('Object id of the jobs\' managed identity, for Graph app-role grants with graphAuth=managed_identity.')
output identityPrincipalId string = identity.outputs.principalId

@description('Name of the Key Vault that holds the Graph certificate.')
output keyVaultName string = keyVault.outputs.name

@description('Embedding endpoint the jobs use (SPINDEX_EMBEDDING__ENDPOINT).')
output embeddingEndpoint string = openAIEndpoint

@description('Name of the Container Apps environment.')
output containerAppsEnvironmentName string = containerEnvironment.outputs.name

@description('Names of the delta, ACL and full jobs (created when deployJobs is true).')
output jobNames array = [
  jobNameOf.delta
  jobNameOf.acl
  jobNameOf.full
]
